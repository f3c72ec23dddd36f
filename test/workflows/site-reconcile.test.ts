// Needs: the real Temporal dev server (tools cache). The activities are mocked (orchestration only).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { siteReconcile } from '../../src/workflows/index.ts';
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

describe('siteReconcile', () => {
  it('Cluster-API: provisions and joins an added host, gives it the packages, leaves the others alone', async () => {
    const r = await runSiteWorkflow(
      env,
      siteReconcile,
      { site: 'edge-01' },
      {
        plan: plan('cluster-api'),
        installedHosts: ['host-1', 'host-2'],
      },
    );
    expect(r.error).toBeUndefined();
    expect(r.result).toEqual({ site: 'edge-01', added: ['host-3'], removed: [] });
    expect(r.calls).toEqual([
      'loadInstalledPlan',
      'fetchClusterKubeconfig',
      'registerBareMetalHosts',
      'waitHostsProvisioned',
      'applyClusterObjects',
      'waitKubernetesVersion:control-plane',
      'waitKubernetesVersion:workers',
      'installPackages',
    ]);
    expect(r.statuses.at(-2)).toMatchObject({ hosts: { 'host-3': { state: 'Ready' } } });
    recordHistory(env, r.workflowId, 'site-reconcile');
  });

  it('kubeadm: drains a removed host, resets it through the BPA, deprovisions it and forgets it', async () => {
    const r = await runSiteWorkflow(
      env,
      siteReconcile,
      { site: 'edge-01' },
      {
        plan: plan('kubeadm'),
        installedHosts: ['host-1', 'host-2', 'host-3', 'host-9'],
      },
    );
    expect(r.error).toBeUndefined();
    expect(r.result).toEqual({ site: 'edge-01', added: [], removed: ['host-9'] });
    expect(r.calls).toEqual([
      'loadInstalledPlan',
      'drainHost:host-9',
      'bringUpCluster:host-1,host-2,host-3',
      'deprovisionHost:host-9',
      'removeHostNode:host-9',
      'forgetHost:host-9',
    ]);
  });

  it('removes an added host again when joining it fails', async () => {
    const r = await runSiteWorkflow(
      env,
      siteReconcile,
      { site: 'edge-01' },
      {
        plan: plan('kubeadm'),
        installedHosts: ['host-1', 'host-2'],
        failAt: 'bringUpCluster',
      },
    );
    expect(r.error).toBeDefined();
    expect(r.calls.slice(-1)).toEqual(['deprovisionHost:host-3']);
    expect(r.calls).not.toContain('deprovisionHost:host-1');
  });

  it('does nothing when the hosts match the spec', async () => {
    const r = await runSiteWorkflow(env, siteReconcile, { site: 'edge-01' }, { plan: plan('kubeadm') });
    expect(r.result).toEqual({ site: 'edge-01', added: [], removed: [] });
    expect(r.calls).toEqual(['loadInstalledPlan']);
  });
});
