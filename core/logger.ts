import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stdout, one line per record. */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, base: { service: name } });
}
