/** What the store refuses, in terms the API maps to status codes (404, 409, 422) without guessing. */
export class StoreError extends Error {
  override name = 'StoreError';
  readonly code: 'NotFound' | 'AlreadyExists' | 'Conflict' | 'InUse' | 'Immutable' | 'MissingReference' | 'Invalid';
  readonly field: string | undefined;
  constructor(code: StoreError['code'], message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}
