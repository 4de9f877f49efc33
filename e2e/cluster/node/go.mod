module github.com/streamroom/streamroom/e2e/cluster/node

go 1.24.0
