// Needs: the real Temporal dev server (tools cache). The activities are mocked: this test is about orchestration
// (rolling order, rollback to the old profile, events per host); the activities are tested against the real peers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { profileArtifacts } from '../../src/domain/profile-diff.ts';
import { sitePatch } from '../../src/workflows/index.ts';
import { rollingBatches } from '../../src/workflows/site-patch.ts';
import { recordHistory } from '../support/histories.ts';
import { nextProfile, plan, type Script } from '../support/site-activities-mock.ts';
import { runSiteWorkflow } from '../support/site-workflow.ts';
import { startTemporal } from '../support/temporal.ts';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTemporal();
});
afterAll(async () => {
  await env.teardown();
});

const base = plan('cluster-api');
const to = nextProfile(base.profile);
const run = (script: Partial<Script> = {}, maxUnavailable = 1, hostTakeoverSeconds?: number) =>
  runSiteWorkflow(
    env,
    sitePatch,
    {
      site: 'edge-01',
      profile: { name: to.name, version: to.version },
      maxUnavailable,
      ...(hostTakeoverSeconds !== undefined && { hostTakeoverSeconds }),
    },
    { plan: base, patchTo: to, ...script },
  );

describe('sitePatch', () => {
  it('patches only what changed, host by host in rolling order, then the charts, and records the new profile', async () => {
    const r = await run();
    expect(r.error).toBeUndefined();
    expect(r.calls[0]).toBe('loadPatchPlan');
    expect(r.calls.slice(1, 3).sort()).toEqual(['distributeArtifacts', 'fetchClusterKubeconfig']);
    expect(r.calls.slice(3, 6)).toEqual([
      'patchHost:host-1:install',
      'patchHost:host-2:install',
      'patchHost:host-3:install',
    ]);
    expect(r.calls.slice(6).sort()).toEqual(['installChart:multus@4.1.0', 'installChart:sriov@1.0.0']);
    expect(r.result).toMatchObject({
      from: { version: '1.0.0' },
      to: { version: '1.1.0' },
      hosts: [
        { host: 'host-1', rebooted: true },
        { host: 'host-2', rebooted: true },
        { host: 'host-3', rebooted: true },
      ],
      charts: { multus: 1, sriov: 1 },
    });
    expect(r.statuses.at(-1)).toMatchObject({ phase: 'Ready', installedProfile: { version: '1.1.0' } });

    recordHistory(env, r.workflowId, 'site-patch');
  });

  it("stays within issue #8's history budget (30 + 5 events per host) with hosts one at a time", async () => {
    // The benchmark's patch: binary packages only. A host's steps are one heartbeating activity and the inventory's
    // reads and writes local activities, so a host costs its activity and one workflow task.
    const onlyBinaries = { ...to, spec: { ...to.spec, containerPackages: base.profile.spec.containerPackages } };
    const r = await run({ patchTo: onlyBinaries });
    expect(r.error).toBeUndefined();
    const events = (await env.client.workflow.getHandle(r.workflowId).fetchHistory()).events ?? [];
    expect(events.length).toBeLessThanOrEqual(30 + 5 * base.spec.hosts.length);
  });

  it('sends what the site lacks within a workflow task when it is small, as a long step when it is not', async () => {
    const scheduled = async (workflowId: string) =>
      ((await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).flatMap(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
      );
    const small = await run();
    expect(small.error).toBeUndefined();
    expect(small.calls).toContain('distributeArtifacts');
    expect(await scheduled(small.workflowId)).not.toContain('distributeArtifacts');

    // 64 MiB and a byte each: an OS image's worth goes through the server as a heartbeating activity.
    const sizes = Object.fromEntries(profileArtifacts(to.spec).map((d) => [d, 64 * 2 ** 20 + 1]));
    const large = await run({ artifactBytes: sizes });
    expect(large.error).toBeUndefined();
    expect(await scheduled(large.workflowId)).toContain('distributeArtifacts');
  });

  it("gives each host's step the patch's takeover as its heartbeat timeout, 150 s unless it says otherwise", async () => {
    const hostHeartbeatTimeouts = async (workflowId: string) =>
      ((await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).flatMap((e) => {
        const a = e.activityTaskScheduledEventAttributes;
        return a?.activityType?.name === 'patchHost' ? [Number(a.heartbeatTimeout?.seconds)] : [];
      });
    const byDefault = await run();
    expect(byDefault.error).toBeUndefined();
    expect(await hostHeartbeatTimeouts(byDefault.workflowId)).toEqual([150, 150, 150]);
    const longer = await run({}, 1, 600);
    expect(longer.error).toBeUndefined();
    expect(await hostHeartbeatTimeouts(longer.workflowId)).toEqual([600, 600, 600]);
  });

  it('keeps the control planes one at a time and the workers maxUnavailable at a time', () => {
    const hosts = [...base.spec.hosts, { ...base.spec.hosts[2]!, name: 'host-4' }];
    expect(rollingBatches(hosts, 2).map((b) => b.map((h) => h.name))).toEqual([
      ['host-1'],
      ['host-2', 'host-3'],
      ['host-4'],
    ]);
  });

  it('rolls every host back when the second host fails: the site ends on its old profile', async () => {
    const r = await run({ failAt: 'patchHost:host-2:install' });
    expect(r.error).toBeInstanceOf(WorkflowFailedError);
    expect((r.error as WorkflowFailedError).cause?.message).toMatch(/patch of edge-01 failed at "patching hosts"/);
    expect(r.calls.slice(r.calls.indexOf('patchHost:host-2:install'))).toEqual([
      'patchHost:host-2:install',
      'patchHost:host-2:rollback',
      'patchHost:host-1:rollback',
    ]);
    expect(r.calls).not.toContain('patchHost:host-3:install');
    expect(r.statuses.at(-1)).toMatchObject({ phase: 'Ready' });
    expect((r.statuses.at(-1) as { message: string }).message).toContain('back on edge-base 1.0.0');
    expect(r.statuses.some((s) => (s as { installedProfile?: unknown }).installedProfile)).toBe(false);
  });

  it('rolls the charts and every host back when a chart upgrade fails', async () => {
    const r = await run({ failAt: 'installChart:sriov@1.0.0' });
    expect(r.error).toBeInstanceOf(WorkflowFailedError);
    const undo = r.calls.slice(r.calls.length - 5);
    // Charts first (reverse of their registration), then the hosts in reverse rolling order.
    expect(undo).toEqual([
      'uninstallChart:sriov',
      'installChart:multus@4.0.0',
      'patchHost:host-3:rollback',
      'patchHost:host-2:rollback',
      'patchHost:host-1:rollback',
    ]);
  });

  it('does nothing to the hosts when only a chart changed', async () => {
    const onlyCharts = { ...to, spec: { ...to.spec, binaryPackages: base.profile.spec.binaryPackages } };
    const r = await run({ patchTo: onlyCharts });
    expect(r.error).toBeUndefined();
    expect(r.calls.filter((c) => c.startsWith('patchHost'))).toEqual([]);
  });
});
