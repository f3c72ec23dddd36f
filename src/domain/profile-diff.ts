import type { BinaryPackage, ContainerPackage, SoftwareProfileSpec } from './software-profile.ts';

export interface Change<T> {
  /** What the site has; absent for a package the new profile adds. */
  from?: T;
  /** What the site gets; absent for a package the new profile drops. */
  to?: T;
}

export interface ProfileDiff {
  binaries: Change<BinaryPackage>[];
  charts: Change<ContainerPackage>[];
  osImageChanged: boolean;
}

/** Same content: a package is changed when its version, its artifact, or how it is installed differs. */
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

function changes<T extends { name: string }>(from: T[], to: T[]): Change<T>[] {
  const old = new Map(from.map((p) => [p.name, p]));
  const out: Change<T>[] = [];
  for (const p of to) {
    const had = old.get(p.name);
    if (!had) out.push({ to: p });
    else if (!same(had, p)) out.push({ from: had, to: p });
    old.delete(p.name);
  }
  for (const p of old.values()) out.push({ from: p });
  return out;
}

/**
 * What a patch from one profile to another changes, in the new profile's order (dropped packages last). Pure, so a
 * workflow computes it and replays it identically.
 */
export function profileDiff(from: SoftwareProfileSpec, to: SoftwareProfileSpec): ProfileDiff {
  return {
    binaries: changes(from.binaryPackages, to.binaryPackages),
    charts: changes(from.containerPackages, to.containerPackages),
    osImageChanged: from.osImage.sha256 !== to.osImage.sha256,
  };
}

/** Every artifact digest a profile needs; the API refuses a profile naming one the store lacks. */
export function profileArtifacts(spec: SoftwareProfileSpec): string[] {
  return [
    spec.osImage.sha256,
    ...spec.binaryPackages.map((p) => p.artifact.sha256),
    ...spec.containerPackages.map((p) => p.chart.sha256),
  ];
}
