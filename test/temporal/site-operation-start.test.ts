// Needs: nothing (pure).
import { describe, expect, it } from '@jest/globals';
import { siteOperationStart } from '../../src/temporal/site-operation-start.ts';

describe('siteOperationStart', () => {
  it("keys a site's operation by site and operation, and names the rollout that started it", () => {
    const start = siteOperationStart('edge-1', 'patch', 'rollout-7');
    expect(start.workflowId).toBe('site/edge-1/patch');
    expect(start.workflowIdReusePolicy).toBe('ALLOW_DUPLICATE');
    expect(start.workflowTaskTimeout).toBe('30 seconds');
    expect(start.typedSearchAttributes.map((p) => [p.key.name, p.value])).toEqual([
      ['IcnSite', 'edge-1'],
      ['IcnOperation', 'patch'],
      ['IcnRolloutId', 'rollout-7'],
    ]);
  });

  it('names no rollout for an operator-started operation', () => {
    expect(siteOperationStart('edge-1', 'install').typedSearchAttributes.map((p) => p.key.name)).toEqual([
      'IcnSite',
      'IcnOperation',
    ]);
  });
});
