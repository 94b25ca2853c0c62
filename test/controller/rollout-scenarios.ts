// The rollout cases of test/controller/plan-rollout.test.ts: each builds the plan (or the
// recovery) of one observed state of an update and returns it as text.
import { describePlan, describeRecovery } from '../../src/controller/describe-plan.js'
import { plan, planOrphanRemoval } from '../../src/controller/plan.js'
import { planRecovery } from '../../src/controller/plan-recovery.js'
import type { PlanInput } from '../../src/controller/plan-types.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import type { RolloutStatus } from '../../src/db/schema.js'
import type { ObservedContainer } from '../../src/runtime/container-runtime.js'
import { buildContainerSpec, type ContainerSpecOptions } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'
import { golden, NOW, ourContainer, plugin, PLUGIN_ID, wantedFor } from '../helpers/plan-fixtures.js'

const OPTIONS: ContainerSpecOptions = { hostIp: '127.0.0.1', instance: 'test' }
const NEW_ID = 'beef00000000111122223333'

/** Generation 1 ran flowforge/crypto:1 on 4100; generation 2 asks for flowforge/crypto:2. */
const before = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', hostPort: 4100 })
export const OLD = ourContainer(before)
export const UPDATED: Plugin = { ...before, manifest: { ...before.manifest, image: 'flowforge/crypto:2' }, generation: 2 }

function specOf(row: Plugin, hostPort = 4100) {
  const parsed = parseManifest(row.manifest)
  if (!parsed.ok) throw new Error(parsed.error)
  return buildContainerSpec(row, parsed.manifest, hostPort, OPTIONS)
}

function text(row: Plugin, container: ObservedContainer | undefined, extra: Partial<PlanInput> = {}): string {
  return describePlan(plan({ plugin: row, container, wanted: wantedFor(row), now: NOW, ...extra }))
}

/** The new container under the plugin's name, after a Recreate switch. */
function switched(row: Plugin, overrides: Partial<ObservedContainer> = {}): ObservedContainer {
  return { id: NEW_ID, name: 'forgehook-crypto', image: 'flowforge/crypto:2', state: 'running', labels: specOf(row).labels, hostPort: 4100, startedAt: new Date(NOW - 2_000), ...overrides }
}

const previous: ObservedContainer = { ...OLD, name: 'forgehook-crypto_previous', state: 'exited', exitCode: 0 }
/** The old one renamed by the first half of a switch: it still runs and serves. */
const previousServing: ObservedContainer = { ...OLD, name: 'forgehook-crypto_previous' }
const progressing: RolloutStatus = { phase: 'progressing', strategy: 'Recreate', generation: 2, fromImage: 'flowforge/crypto:1', toImage: 'flowforge/crypto:2', startedAt: new Date(NOW - 1_000).toISOString() }
/** Generation 3 asks for flowforge/crypto:3 while generation 2's switch is half done. */
const NEWER: Plugin = { ...UPDATED, manifest: { ...UPDATED.manifest, image: 'flowforge/crypto:3' }, generation: 3, rollout: progressing }
const ago = (ms: number) => new Date(NOW - ms).toISOString()
const verifying: RolloutStatus = { phase: 'verifying', strategy: 'Recreate', generation: 2, fromImage: 'flowforge/crypto:1', toImage: 'flowforge/crypto:2', startedAt: ago(3_000), switchedAt: ago(2_000) }
const inVerify = (rollout: Partial<RolloutStatus> = {}, row: Plugin = UPDATED): Plugin => ({ ...row, rollout: { ...verifying, ...rollout } })
const portAnswers = { ok: true, detail: 'port 4100 accepts connections' }
const rolledBack: RolloutStatus = { ...verifying, phase: 'rolled-back', error: 'the new container exited with code 3', finishedAt: ago(1_000) }

const withHealth: Plugin = { ...UPDATED, manifest: { ...UPDATED.manifest, healthCheck: { path: '/health' } }, updatePolicy: { healthyTimeoutSeconds: 10 } }

const startFirst: Plugin = { ...UPDATED, updatePolicy: { strategy: 'StartFirst' } }
const reserved: Plugin = { ...startFirst, rollout: { phase: 'progressing', strategy: 'StartFirst', generation: 2, fromImage: 'flowforge/crypto:1', toImage: 'flowforge/crypto:2', startedAt: ago(100), toHostPort: 4101 } }
const candidate = specOf(reserved, 4101)
const nextBeside: ObservedContainer = { id: NEW_ID, name: 'forgehook-crypto_next', image: 'flowforge/crypto:2', state: 'running', labels: candidate.labels, hostPort: 4101, startedAt: new Date(NOW - 6_000) }
const sfVerifying: Plugin = { ...reserved, rollout: { ...reserved.rollout!, phase: 'verifying', startedAt: ago(6_000) } }
const draining: Plugin = { ...sfVerifying, hostPort: 4101, rollout: { ...sfVerifying.rollout!, phase: 'draining', switchedAt: ago(1_500), fromHostPort: 4100 } }

export const SCENARIOS: Record<string, () => string> = {
  'Recreate, prepare: the image is made sure of and the new container created beside the old one, which is not touched': () => text(UPDATED, OLD),
  'Recreate, switch, first half: the names change hands while the old one still serves': () =>
    text(UPDATED, OLD, { rollout: { next: { ...switched(UPDATED, { state: 'created' }), name: 'forgehook-crypto_next' } } }),
  'Recreate, switch, second half: the old one stops and the new one starts, the row starting meanwhile': () =>
    text({ ...UPDATED, rollout: progressing }, switched(UPDATED, { state: 'created' }), { rollout: { previous: previousServing } }),
  'a newer spec between the two halves of a switch: the names go back and the old one keeps serving, never stopped': () =>
    text(NEWER, switched(UPDATED, { state: 'created' }), { rollout: { previous: previousServing } }),
  'Recreate, verify: without a health check the new one must keep running 5 s and answer on its port': () =>
    text(inVerify(), switched(UPDATED), { rollout: { previous, probe: portAnswers } }),
  'Recreate, verify passed: the old container goes and the generation is observed': () =>
    text(inVerify({ switchedAt: ago(6_000) }), switched(UPDATED), { rollout: { previous, probe: portAnswers } }),
  'Recreate, rollback: a new container that exits is removed and the old one serves again': () =>
    text(inVerify(), switched(UPDATED, { state: 'exited', exitCode: 3 }), { rollout: { previous } }),
  'Recreate, rollback: an unhealthy HEALTHCHECK rolls back at once, with its last output': () =>
    text(inVerify(), switched(UPDATED, { health: 'unhealthy', healthOutput: 'curl: (7) Failed to connect' }), { rollout: { previous } }),
  'Recreate, rollback: a health path not answering 2xx within healthyTimeoutSeconds': () =>
    text(inVerify({ switchedAt: ago(11_000) }, withHealth), switched(withHealth), { rollout: { previous, probe: { ok: false, detail: 'GET /health answered 503' } } }),
  'after a rollback nothing is updated until the spec changes or a retry is asked; the old one is kept running': () => text({ ...UPDATED, rollout: rolledBack }, OLD),
  'after a rollback the old container is still restarted when it crashes': () => text({ ...UPDATED, rollout: rolledBack }, { ...OLD, state: 'exited', exitCode: 1 }),
  'a retry asked after the rollback prepares the same generation again': () => text({ ...UPDATED, rollout: rolledBack, rolloutRetryAt: new Date(NOW - 500) }, OLD),
  'manager stopped between the two renames of a switch: the new container takes the name': () =>
    text(UPDATED, undefined, { rollout: { next: { ...switched(UPDATED, { state: 'created' }), name: 'forgehook-crypto_next' }, previous: previousServing } }),
  'manager stopped in a rollback after the new one was removed: the old one takes its name back': () => text(UPDATED, undefined, { rollout: { previous } }),
  'manager stopped in a rollback after the old one took its name back: the rollback is recorded, the old one started, the release not tried again': () =>
    text(inVerify(), { ...OLD, state: 'exited', exitCode: 0 }),
  'manager stopped in a rollback that had restarted the old one: the rollback is recorded, nothing else is done': () => text(inVerify(), OLD),
  'a container prepared for another spec is a leftover and goes': () =>
    text(UPDATED, OLD, { rollout: { next: { ...OLD, id: 'dead0000aaaa', name: 'forgehook-crypto_next', state: 'created' } } }),
  'StartFirst, first a second port is reserved': () => text(startFirst, OLD),
  'StartFirst, prepare: the new container is created and started on the reserved port beside the old one': () => text(reserved, OLD, { rollout: { candidate } }),
  'StartFirst, verify passed: the row\'s host port moves to the new container (the proxy follows it)': () =>
    text(sfVerifying, OLD, { rollout: { candidate, next: nextBeside, probe: { ok: true, detail: 'port 4101 accepts connections' } } }),
  'StartFirst, drain: the old one is kept while the proxy still has requests on it': () =>
    text(draining, OLD, { rollout: { candidate: specOf(draining, 4101), next: { ...nextBeside, labels: specOf(draining, 4101).labels }, oldInFlight: 2 } }),
  'StartFirst, drained: the old one is stopped and removed, the new one takes the name': () =>
    text(draining, OLD, { rollout: { candidate: specOf(draining, 4101), next: { ...nextBeside, labels: specOf(draining, 4101).labels }, oldInFlight: 0 } }),
  'StartFirst, a new container that exits is discarded; the old one never stopped': () =>
    text(sfVerifying, OLD, { rollout: { candidate, next: { ...nextBeside, state: 'exited', exitCode: 1 } } }),
  'StartFirst, manager stopped in a rollback of the drain after the new one was removed: the port goes back to the old one, the rollback is recorded': () =>
    text(draining, OLD, { rollout: { candidate: specOf(draining, 4101) } }),
  'StartFirst, manager stopped in a rollback of the verification after the new one was removed: the rollback is recorded, the old one serves on': () =>
    text(sfVerifying, OLD, { rollout: { candidate } }),
  'a failed preparation leaves the old version serving, says so, and is retried with backoff': () =>
    describeRecovery(planRecovery(UPDATED, { kind: 'image-missing', error: 'image not found: flowforge/crypto:2 (manifest unknown)' }, plan({ plugin: UPDATED, container: OLD, wanted: wantedFor(UPDATED), now: NOW }))),
}

const withVolumes = plugin({ volumes: [{ name: 'data', mountPath: '/var/lib/crypto' }, { name: 'conf', mountPath: '/etc/crypto', readOnly: true }] })
const adopted = plugin({ source: 'adopted', status: 'running', containerId: 'abcabc000000', generation: 1 })
const unlabelled: ObservedContainer = { id: 'abcabc000000', name: 'forgehook-crypto', image: 'legacy:1', state: 'running', labels: {}, hostPort: 4100, startedAt: new Date(NOW - 60_000) }

/** Volumes, deletions and adoption: what survives an update, what an uninstall removes. */
export const DATA_SCENARIOS: Record<string, () => string> = {
  'named volumes are created, labelled as ours, before the container that mounts them': () => golden(withVolumes, undefined),
  'an update mounts the old container\'s anonymous volumes (an image VOLUME) in the new one': () =>
    text(UPDATED, { ...OLD, mounts: [{ type: 'volume', name: 'a'.repeat(64), destination: '/cache', readOnly: false }] }),
  'uninstall with purge removes a rollout\'s container, the container with its anonymous volumes, and the named volumes': () => {
    const deleting: Plugin = { ...withVolumes, status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', deletionRequestedAt: new Date(NOW), purgeVolumes: true }
    return text(deleting, ourContainer(deleting), { rollout: { next: { ...ourContainer(deleting), id: 'beef00000000', name: 'forgehook-crypto_next', state: 'created' } } })
  },
  'uninstall without purge keeps the named volumes': () => {
    const deleting: Plugin = { ...withVolumes, status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', deletionRequestedAt: new Date(NOW) }
    return text(deleting, ourContainer(deleting))
  },
  'an adopted container (no labels of ours) is kept as it is while its spec is the adopted one': () => golden(adopted, unlabelled),
  'an adopted container is replaced by one of ours at the first spec change, through a rollout': () => golden({ ...adopted, generation: 2 }, unlabelled),
  'deleting an adopted plugin removes its container: once adopted it is ours': () => golden({ ...adopted, deletionRequestedAt: new Date(NOW) }, unlabelled),
  'an adopted plugin whose row was deleted in SQL: the tombstone names its container, which goes': () =>
    describePlan(planOrphanRemoval(PLUGIN_ID, [unlabelled], { containerId: 'abcabc000000', forgehookId: 'crypto' })),
  'a tombstone never makes another container under the name go': () =>
    describePlan(planOrphanRemoval(PLUGIN_ID, [{ ...unlabelled, id: 'other0000000' }], { containerId: 'abcabc000000', forgehookId: 'crypto' })),
  'stopped in the middle of a rollout: the container under the plugin\'s name stays, the rollout\'s go': () =>
    text({ ...UPDATED, desiredState: 'stopped' }, OLD, { rollout: { previous: { ...OLD, id: 'p00000000000', name: 'forgehook-crypto_previous', state: 'exited' } } }),
}
