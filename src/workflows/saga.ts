import { CancellationScope, log } from '@temporalio/workflow';

/**
 * Compensations, registered right after the side effect they undo and run in reverse order. They run in a
 * non-cancellable scope so that an operator's cancel still leaves the site clean; a compensation that fails is
 * logged and the others still run, and the first such error is reported.
 */
export class Saga {
  private readonly steps: { name: string; undo: () => Promise<unknown> }[] = [];

  add(name: string, undo: () => Promise<unknown>): void {
    this.steps.push({ name, undo });
  }

  get pending(): string[] {
    return this.steps.map((s) => s.name);
  }

  async compensate(): Promise<string[]> {
    const failed: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const step of [...this.steps].reverse()) {
        try {
          await step.undo();
        } catch (err) {
          log.error('compensation failed', {
            step: step.name,
            error: err instanceof Error ? err.message : String(err),
          });
          failed.push(step.name);
        }
      }
    });
    this.steps.length = 0;
    return failed;
  }
}
