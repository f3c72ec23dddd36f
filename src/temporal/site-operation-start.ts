import type { SearchAttributePair } from '@temporalio/common';
// keys.ts, not operations.ts: the workflows' bundle stays free of zod (see keys.ts).
import { type SiteOperationName, siteOperationId } from '../domain/keys.ts';
import { operationAttribute, rolloutAttribute, siteAttribute } from './search-attributes.ts';

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
  typedSearchAttributes: SearchAttributePair[];
} {
  return {
    workflowId: siteOperationId(site, operation),
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    typedSearchAttributes: [
      { key: siteAttribute, value: site },
      { key: operationAttribute, value: operation },
      ...(rolloutId === undefined ? [] : [{ key: rolloutAttribute, value: rolloutId }]),
    ],
  };
}
