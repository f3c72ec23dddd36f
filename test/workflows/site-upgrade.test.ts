// Needs: the real Temporal dev server (tools cache). The activities are mocked (orchestration only).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { siteUpgrade } from '../../src/workflows/index.ts';
import { recordHistory } from '../support/histories.ts';
import { plan } from '../support/site-activities-mock.ts';
import { runSiteWorkflow } from '../support/site-workflow.ts';
import { startTemporal } from '../support/temporal.ts';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTemporal();
});
afterAll(async () => {
  await env.teardown();
});

describe('siteUpgrade', () => {
  it('upgrades the control plane, waits for it, then the workers, and records the version', async () => {
    const r = await runSiteWorkflow(
      env,
      siteUpgrade,
      { site: 'edge-01', kubernetesVersion: 'v1.35.0' },
      {
        plan: plan('cluster-api'),
      },
    );
    expect(r.error).toBeUndefined();
    expect(r.calls).toEqual([
      'loadSitePlan',
      'upgradeKubernetes:control-plane',
      'waitKubernetesVersion:control-plane',
      'upgradeKubernetes:workers',
      'waitKubernetesVersion:workers',
    ]);
    expect(r.statuses.at(-1)).toMatchObject({ phase: 'Ready', kubernetesVersion: 'v1.35.0' });
    recordHistory(env, r.workflowId, 'site-upgrade');
  });

  it('goes through the BPA with kubeadm for a site without Cluster-API', async () => {
    const r = await runSiteWorkflow(
      env,
      siteUpgrade,
      { site: 'edge-01', kubernetesVersion: 'v1.35.0' },
      {
        plan: plan('kubeadm'),
      },
    );
    expect(r.error).toBeUndefined();
    expect(r.calls).toEqual(['loadSitePlan', 'upgradeKubeadmCluster']);
  });

  it('stops at the workers when they do not come up, and says the control plane is upgraded', async () => {
    const r = await runSiteWorkflow(
      env,
      siteUpgrade,
      { site: 'edge-01', kubernetesVersion: 'v1.35.0' },
      {
        plan: plan('cluster-api'),
        failAt: 'waitKubernetesVersion:workers',
      },
    );
    expect(r.error).toBeInstanceOf(WorkflowFailedError);
    expect(r.statuses.at(-1)).toMatchObject({ phase: 'Failed' });
    expect((r.statuses.at(-1) as { message: string }).message).toContain('upgraded so far: control-plane');
  });
});
