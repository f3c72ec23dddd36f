// Needs: nothing but the workflow bundle: replays recorded histories (RECORD_HISTORIES=1 npm run jest re-records).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { Worker } from '@temporalio/worker';
import * as workflows from '../../src/workflows/index.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { historiesDir } from '../support/histories.ts';
import { workflowBundle } from '../support/temporal.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';

const files = readdirSync(historiesDir).filter((f) => f.endsWith('.json'));

function workflowTypeOf(history: {
  events?: { workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }[];
}) {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
}

describe('replay of recorded histories', () => {
  const histories = files.map((file) => ({
    file,
    history: JSON.parse(readFileSync(historiesDir + file, 'utf8')) as object,
  }));

  it('has a recorded history for every workflow', () => {
    const recorded = new Set(histories.map(({ history }) => workflowTypeOf(history)));
    expect(Object.keys(workflows).filter((name) => !recorded.has(name))).toEqual([]);
  });

  it.each(files)('%s replays without non-determinism', async (file) => {
    const entry = histories.find((h) => h.file === file);
    await Worker.runReplayHistory(
      { workflowBundle: await workflowBundle(), dataConverter: dataConverter(testCodecKeys) },
      entry?.history,
    );
  });
});
