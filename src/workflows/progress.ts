import { setHandler, defineQuery } from '@temporalio/workflow';
import { progressQuery } from '../domain/keys.ts';
import type { OperationProgress } from '../domain/operations.ts';

export const progress = defineQuery<OperationProgress>(progressQuery);

/** The step an operation is at and each host's state, answered to the `progress` query while it runs. */
export class ProgressTracker {
  private state: OperationProgress = { step: 'starting', items: {}, counts: {} };

  constructor() {
    setHandler(progress, () => this.state);
  }

  step(name: string): void {
    this.state = { ...this.state, step: name };
  }

  item(name: string, state: string, detail?: string): void {
    this.state = {
      ...this.state,
      items: { ...this.state.items, [name]: detail === undefined ? { state } : { state, detail } },
    };
  }

  get current(): OperationProgress {
    return this.state;
  }
}
