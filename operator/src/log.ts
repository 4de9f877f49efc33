// JSON logs, one object per line on stdout, through pino: the room server logs the same way
// (room-image/src/server/log.ts), so both read alike: {"level":"info","time":"…","msg":"…",…}.
// Context goes into child loggers (`log.child({ room })`), errors under `err` (with their `cause`).
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = PinoLogger<never, boolean>;

/** The message of a Kubernetes API error (its Status body) or of any error. */
export function errorMessage(err: unknown): string {
  if (err && typeof err === 'object') {
    const body = (err as { body?: unknown }).body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: string };
        if (parsed.message) return parsed.message;
      } catch {
        // not JSON: fall through
      }
    } else if (body && typeof body === 'object' && 'message' in body) {
      return String((body as { message: unknown }).message);
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/** A logger at `level` writing lines to stdout, or to `write` (tests). */
export function createLogger(level: LogLevel, write?: (line: string) => void): Logger {
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
