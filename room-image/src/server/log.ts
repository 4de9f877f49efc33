// JSON logs, one object per line on stdout, through pino, as the operator logs
// (operator/src/log.ts): {"level":"info","time":"…","msg":"…",…}. Context goes into child loggers
// (`log.child({ socket })`), errors under `err` (message, stack and `cause`).
import { pino, type DestinationStream, type Logger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Log = Logger<never, boolean>;

/** A logger at `level` writing to stdout, or to `write` (tests). */
export function createLogger(level: LogLevel = 'info', write?: (line: string) => void): Log {
  const destination: DestinationStream = write ? { write } : pino.destination({ sync: true });
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
