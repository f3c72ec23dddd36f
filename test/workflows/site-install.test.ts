// Needs: the real Temporal dev server (tools cache). The activities are mocked: this test is about orchestration
// (order, parallelism, compensations, cancellation, progress); the activities are tested against the real peers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { siteInstall } from '../../src/workflows/index.ts';
import { progress } from '../../src/workflows/progress.ts';
import { recordHistory } from '../support/histories.ts';
import { plan, type Script } from '../support/site-activities-mock.ts';
import { runSiteWorkflow } from '../support/site-workflow.ts';
import { startTemporal } from '../support/temporal.ts';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTemporal();
});
afterAll(async () => {
  await env.teardown();
});

const run = (script: Script, keepOnFailure = false, during?: (workflowId: string) => Promise<void>) =>
  runSiteWorkflow(env, siteInstall, { site: 'edge-01', keepOnFailure }, script, during);

const sorted = (calls: string[], prefix: string) => calls.filter((c) => c.startsWith(prefix)).sort();

describe('siteInstall (kubeadm through the BPA)', () => {
  it('runs the runbook in order, hosts in parallel, and records the site Ready', async () => {
    const r = await run({ plan: plan('kubeadm') });
    expect(r.error).toBeUndefined();
    expect(r.result).toEqual({
      site: 'edge-01',
      profile: { name: 'edge-base', version: '1.0.0' },
      hosts: ['host-1', 'host-2', 'host-3'],
      kubeconfigSecret: 'edge-01-kubeconfig',
      charts: { multus: 1 },
    });
    const order = r.calls.map((c) => c.split(':')[0]);
    expect([...new Set(order)]).toEqual([
      'loadSitePlan',
      'distributeArtifacts',
      'provisionHost',
      'bringUpCluster',
      'installPackages',
      'installChart',
    ]);
    expect(sorted(r.calls, 'provisionHost')).toEqual([
      'provisionHost:host-1',
      'provisionHost:host-2',
      'provisionHost:host-3',
    ]);
    expect(r.statuses.at(-1)).toMatchObject({
      phase: 'Ready',
      installedProfile: { name: 'edge-base', version: '1.0.0' },
      hosts: { 'host-1': { state: 'Ready', packages: { containerd: '1.7.0' } } },
    });
    recordHistory(env, r.workflowId, 'site-install');
  });

  it('compensates in reverse order when a late step fails, and records the site Failed', async () => {
    const r = await run({ plan: plan('kubeadm'), failAt: 'installChart' });
    expect(r.error).toBeInstanceOf(WorkflowFailedError);
    expect((r.error as WorkflowFailedError).cause?.message).toMatch(
      /failed at "installing add-ons": installChart:multus@4.0.0 broke/,
    );
    const undo = r.calls.slice(r.calls.indexOf('installChart:multus@4.0.0') + 1);
    expect(undo.slice(0, 2)).toEqual(['uninstallChart:multus', 'resetCluster']);
    expect(undo.slice(2).sort()).toEqual([
      'deprovisionHost:host-1',
      'deprovisionHost:host-2',
      'deprovisionHost:host-3',
    ]);
    expect(r.statuses.at(-1)).toMatchObject({ phase: 'Failed' });
    expect((r.statuses.at(-1) as { message: string }).message).toContain('everything it had done was undone');
  });

  it('with keepOnFailure, stops where it failed and undoes nothing', async () => {
    const r = await run({ plan: plan('kubeadm'), failAt: 'bringUpCluster' }, true);
    expect(r.error).toBeInstanceOf(WorkflowFailedError);
    expect(r.calls.filter((c) => /^(deprovision|reset|rollback|uninstall)/.test(c))).toEqual([]);
    expect((r.statuses.at(-1) as { message: string }).message).toMatch(
      /stopped at "creating the cluster".*kept for diagnosis/,
    );
  });

  it('answers progress while a host deploys, and an operator cancel runs the compensations', async () => {
    let seen: unknown;
    const r = await run({ plan: plan('kubeadm'), blockAt: 'provisionHost:host-2' }, false, async (workflowId) => {
      const handle = env.client.workflow.getHandle(workflowId);
      for (let i = 0; i < 100; i++) {
        seen = await handle.query(progress);
        const items = (seen as { items: Record<string, { state: string }> }).items;
        if (items['host-1']?.state === 'provisioned' && items['host-3']?.state === 'provisioned') break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await handle.cancel();
    });
    expect(seen).toMatchObject({ step: 'provisioning hosts', items: { 'host-2': { state: 'provisioning' } } });
    expect(String((r.error as WorkflowFailedError).cause?.name)).toBe('CancelledFailure');
    expect(sorted(r.calls, 'deprovisionHost')).toEqual([
      'deprovisionHost:host-1',
      'deprovisionHost:host-2',
      'deprovisionHost:host-3',
    ]);
    expect((r.statuses.at(-1) as { message: string }).message).toContain('install cancelled');
  });
});

describe('siteInstall (Cluster-API and metal3)', () => {
  it('registers BareMetalHosts, creates the cluster objects, then takes the kubeconfig from the cluster', async () => {
    const r = await run({ plan: plan('cluster-api') });
    expect(r.error).toBeUndefined();
    expect([...new Set(r.calls.map((c) => c.split(':')[0]))]).toEqual([
      'loadSitePlan',
      'distributeArtifacts',
      'registerBareMetalHosts',
      'waitHostsProvisioned',
      'applyClusterObjects',
      'waitClusterProvisioned',
      'installPackages',
      'fetchClusterKubeconfig',
      'installChart',
    ]);
  });

  it('deletes the cluster objects and the hosts when the cluster never comes up', async () => {
    const r = await run({ plan: plan('cluster-api'), failAt: 'waitClusterProvisioned' });
    expect(r.calls.slice(r.calls.indexOf('waitClusterProvisioned') + 1)).toEqual([
      'deleteClusterObjects',
      'deleteBareMetalHosts',
    ]);
  });
});
