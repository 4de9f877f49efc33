// nettest is a static test tool for the real node (image streamroom/nettest:0.1.0, built by
// e2e/src/build/images.ts): a tiny HTTP server and the client side checks e2e/real/networkpolicy.test.ts runs in
// pods with `kubectl exec`, without needing any image from a registry.
//
//	nettest serve [addr]     HTTP server (default :8080): "/" answers "hello from <hostname>"
//	nettest get <url>        GET a URL (5 s timeout), print the body; exit 1 on error or non-2xx
//	nettest lookup <name>    resolve a name with /etc/resolv.conf (Go's resolver), print the addresses
//	nettest api <path>       GET https://kubernetes.default.svc<path> with the pod's service account
//	                         token and CA (the in-cluster path to the API server)
//	nettest burn             busy-loop one CPU forever (for kubectl top / HPA checks)
//	nettest sleep            sleep until SIGTERM/SIGINT
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nettest serve [addr] | get <url> | lookup <name> | burn | sleep")
		os.Exit(2)
	}
	arg := func(i int, def string) string {
		if len(os.Args) > i {
			return os.Args[i]
		}
		return def
	}
	switch os.Args[1] {
	case "serve":
		serve(arg(2, ":8080"))
	case "get":
		os.Exit(get(arg(2, "")))
	case "lookup":
		os.Exit(lookup(arg(2, "")))
	case "api":
		os.Exit(api(arg(2, "/api")))
	case "burn":
		go waitSignal()
		x := 0
		for {
			x++
		}
	case "sleep":
		waitSignal()
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func waitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	os.Exit(0)
}

func serve(addr string) {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		waitSignalFn(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
	}()
	fmt.Printf("serving on %s\n", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func waitSignalFn(f func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	f()
}

func get(url string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return do(&http.Client{Timeout: 5 * time.Second}, req)
}

// do sends the request and prints the body; 0 for a 2xx answer, else 1 (the error on stderr).
func do(client *http.Client, req *http.Request) int {
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	os.Stdout.Write(body)
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(os.Stderr, "HTTP %d\n", resp.StatusCode)
		return 1
	}
	return 0
}

func lookup(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(strings.Join(addrs, " "))
	return 0
}

func api(path string) int {
	const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
	ca, err := os.ReadFile(sa + "ca.crt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	token, err := os.ReadFile(sa + "token")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, "https://kubernetes.default.svc"+path, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	return do(client, req)
}
