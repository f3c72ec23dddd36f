import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Field names whose values are secrets wherever they appear in a log record. pino replaces them before the record
 * is serialised, so a secret never reaches a log sink even when a whole object is logged.
 */
export const redactedPaths = [
  'password',
  'token',
  'secret',
  'privateKey',
  'kubeconfig',
  'authorization',
  'bmc.password',
  'credentials',
  '*.password',
  '*.token',
  '*.secret',
  '*.privateKey',
  '*.kubeconfig',
  '*.authorization',
  '*.credentials',
  'req.headers.authorization',
  'headers.authorization',
];

export function createLogger(opts: { level: string; name: string } & Pick<LoggerOptions, 'transport'>): Logger {
  return pino({
    name: opts.name,
    level: opts.level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    ...(opts.transport && { transport: opts.transport }),
  });
}
