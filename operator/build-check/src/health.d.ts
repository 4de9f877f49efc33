import http from 'node:http';
import type { Controller } from './controller.js';
export declare function metricsText(c: Controller): string;
/** Serves the endpoints on host:port; resolves with the bound address. */
export declare function serveHealth(c: Controller, address: string): Promise<{
    server: http.Server;
    url: string;
}>;
