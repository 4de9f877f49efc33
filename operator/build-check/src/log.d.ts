export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export interface Logger {
    debug(msg: string, fields?: Record<string, unknown>): void;
    info(msg: string, fields?: Record<string, unknown>): void;
    warn(msg: string, fields?: Record<string, unknown>): void;
    error(msg: string, fields?: Record<string, unknown>): void;
}
export declare function errorMessage(err: unknown): string;
export declare function createLogger(level: LogLevel, write?: (line: string) => void): Logger;
