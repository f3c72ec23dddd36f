import type { FastifyError, FastifyInstance } from 'fastify';
import { WorkflowNotFoundError } from '@temporalio/client';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { StoreError } from '../store/index.ts';
import { storeErrorResponse } from './store-errors.ts';

export interface FieldIssue {
  field: string;
  message: string;
}

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
