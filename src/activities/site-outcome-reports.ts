/**
 * Site operations tell their rollout how they ended; at fleet scale thousands end within seconds of each other, all
 * to the one rollout workflow. One signal each queued them on the rollout's lock in the server: at 10,000 sites the
 * last step of a site (its report) took 35 s on average (measured; 0.3 s at 2,000 sites), and every report was one
 * more event in the rollout's history. The reports a worker process makes within a short window go as one signal.
 * Each caller still waits until its report is in the rollout's history: nothing is acknowledged before it is sent.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { rolloutSitesEndedSignal } from '../domain/keys.ts';
import type { RolloutSiteEnded } from '../domain/operations.ts';

interface Pending {
  client: Client;
  ended: RolloutSiteEnded[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  timer: NodeJS.Timeout;
}

export interface SiteOutcomeReportsOptions {
  /** How long a report waits for others to the same rollout before they go. */
  windowMs?: number;
  /** The most reports in one signal (each a site name and at most 500 characters of reason). */
  maxBatch?: number;
}

export class SiteOutcomeReports {
  readonly #windowMs: number;
  readonly #maxBatch: number;
  readonly #pending = new Map<string, Pending>();

  constructor(opts: SiteOutcomeReportsOptions = {}) {
    this.#windowMs = opts.windowMs ?? 200;
    this.#maxBatch = opts.maxBatch ?? 100;
  }

  /** Resolves once the rollout `rollout` (a workflow id) has the report, or is gone (it waits for no one then). */
  report(client: Client, rollout: string, ended: RolloutSiteEnded): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let batch = this.#pending.get(rollout);
      if (!batch) {
        const timer = setTimeout(() => {
          this.#send(rollout);
        }, this.#windowMs);
        batch = { client, ended: [], waiters: [], timer };
        this.#pending.set(rollout, batch);
      }
      batch.ended.push(ended);
      batch.waiters.push({ resolve, reject });
      if (batch.ended.length >= this.#maxBatch) this.#send(rollout);
    });
  }

  #send(rollout: string): void {
    const batch = this.#pending.get(rollout);
    if (!batch) return;
    this.#pending.delete(rollout);
    clearTimeout(batch.timer);
    batch.client.workflow
      .getHandle(rollout)
      .signal(rolloutSitesEndedSignal, batch.ended)
      .then(
        () => {
          for (const w of batch.waiters) w.resolve();
        },
        (err: unknown) => {
          // A rollout that ended (cancelled, terminated) no longer waits for anyone.
          const gone = err instanceof WorkflowNotFoundError;
          for (const w of batch.waiters) {
            if (gone) w.resolve();
            else w.reject(err);
          }
        },
      );
  }
}
