import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporalCli, toolPath } from '../../deploy/dev/tools.ts';

export const historiesDir = fileURLToPath(new URL('../workflows/histories/', import.meta.url));

/**
 * With RECORD_HISTORIES=1, saves a finished workflow's history (still encrypted, as the server holds it) for the
 * replay tests. The temporal CLI writes it: the SDK's historyToJSON trips over Jest's module sandbox.
 */
export function recordHistory(env: TestWorkflowEnvironment, workflowId: string, name: string): void {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const json = execFileSync(
    toolPath(temporalCli),
    [
      'workflow',
      'show',
      '--output',
      'json',
      '--address',
      env.address,
      '--namespace',
      env.namespace ?? 'default',
      '-w',
      workflowId,
    ],
    { encoding: 'utf8' },
  );
  mkdirSync(historiesDir, { recursive: true });
  writeFileSync(`${historiesDir}${name}.json`, json);
}
