import type { FastifyError, FastifyInstance } from 'fastify';
import { z } from 'zod';
import { WorkflowNotFoundError } from '@temporalio/client';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { StoreError } from '../store/index.ts';
import { storeErrorResponse } from './store-errors.ts';

/** Every 4xx body: the reason, a message, and the fields at fault where the input was invalid. */
export const Failure = z.object({
  error: z.string(),
  message: z.string(),
  field: z.string().optional(),
  issues: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});
export type FieldIssue = NonNullable<z.infer<typeof Failure>['issues']>[number];

/**
 * Every rejected input answers 4xx with the fields at fault; anything unexpected answers 500 without internals
 * (the detail goes to the log, which redacts secrets).
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | StoreError | WorkflowNotFoundError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues: FieldIssue[] = error.validation.map((v) => ({
        field: [error.validationContext, ...v.instancePath.split('/').filter(Boolean)].join('.'),
        message: v.message ?? 'is invalid',
      }));
      return reply.code(400).send({
        error: 'ValidationError',
        message: issues.map((i) => `${i.field}: ${i.message}`).join('; '),
        issues,
      });
    }
    if (error instanceof StoreError) {
      const { status, body } = storeErrorResponse(error);
      return reply.code(status).send(body);
    }
    if (error instanceof WorkflowNotFoundError) {
      return reply.code(404).send({ error: 'NotFound', message: `no operation ${error.workflowId}` });
    }
    const status = error.statusCode ?? 500;
    if (status < 500) {
      return reply.code(status).send({ error: error.name, message: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send({ error: 'InternalError', message: 'internal error; see the API log' });
  });
}
