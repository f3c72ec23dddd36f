/** A counting semaphore: at most `limit` holders; waiters are served first come, first served. */
export class Limiter {
  readonly limit: number;
  #active = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`a limit must be a positive integer, not ${limit}`);
    this.limit = limit;
  }

  get active(): number {
    return this.#active;
  }

  /** Nobody holds or awaits it: the owner may drop it. */
  get unused(): boolean {
    return this.#active === 0 && this.#waiters.length === 0;
  }

  /** Resolves with a release function once a slot is free; call it exactly once. */
  async acquire(): Promise<() => void> {
    if (this.#active < this.limit) this.#active++;
    // The releasing holder hands its slot over directly, so #active stays counted for the waiter.
    else await new Promise<void>((resolve) => this.#waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#active--;
    };
  }
}
