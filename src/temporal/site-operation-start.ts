import type { SearchAttributePair } from '@temporalio/common';
// keys.ts, not operations.ts: the workflows' bundle stays free of zod (see keys.ts).
import { type SiteOperationName, siteOperationId } from '../domain/keys.ts';
import { operationAttribute, rolloutAttribute, siteAttribute } from './search-attributes.ts';

/**
 * A site operation's workflow task may take this long on its worker before the server gives it to another: 3 times
 * the SDK's 10 s. Under a fleet's load a task can wait behind a hundred others inside a busy worker; timed out, it
 * cost three history events and a place at the back of the shared queue, behind every site's first task (measured:
 * 2,000 sites × 3 hosts on 2 cores, one task in 2,000 timed out at 10 s, and a site's history went from 33 events to
 * 36). The price: a task whose worker died while running it is retried 30 s later instead of 10.
 */
export const siteOperationTaskTimeout = '30 seconds';

/**
 * What every start of a site's operation shares, from the API, a rollout's child or a rollout's bulk start: the
 * site's business key as the workflow id (a second start of the same operation is refused while one runs, a closed
 * one may run again) and the attributes operators filter the Web UI by. Pure: workflows call it too.
 */
export function siteOperationStart(
  site: string,
  operation: SiteOperationName,
  rolloutId?: string,
): {
  workflowId: string;
  workflowIdReusePolicy: 'ALLOW_DUPLICATE';
  workflowTaskTimeout: typeof siteOperationTaskTimeout;
  typedSearchAttributes: SearchAttributePair[];
} {
  return {
    workflowId: siteOperationId(site, operation),
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    workflowTaskTimeout: siteOperationTaskTimeout,
    typedSearchAttributes: [
      { key: siteAttribute, value: site },
      { key: operationAttribute, value: operation },
      ...(rolloutId === undefined ? [] : [{ key: rolloutAttribute, value: rolloutId }]),
    ],
  };
}
