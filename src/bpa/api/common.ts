import { z } from 'zod';

/** Every refusal: `offset` tells an uploader where to resume. */
export const Failure = z.object({
  error: z.string(),
  message: z.string(),
  field: z.string().optional(),
  offset: z.number().optional(),
});
export const security = [{ bearer: [] }];
