import { StoreError } from '../store/index.ts';

const statusOf: Record<StoreError['code'], number> = {
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  InUse: 409,
  Immutable: 409,
  MissingReference: 422,
  Invalid: 400,
};

/** A store refusal as the API answers it: the status its code implies and, where known, the field at fault. */
export function storeErrorResponse(err: StoreError): {
  status: number;
  body: { error: string; message: string; field?: string };
} {
  const status = err.code === 'Invalid' && /exceeds the limit/.test(err.message) ? 413 : statusOf[err.code];
  return { status, body: { error: err.code, message: err.message, ...(err.field && { field: err.field }) } };
}
