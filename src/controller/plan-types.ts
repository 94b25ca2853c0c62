// The vocabulary between the planner (plan.ts, plan-recovery.ts: pure, every decision) and
// the executor (reconciler.ts: performs one action kind at a time, decides nothing).
import type { Plugin, PluginStatusUpdate } from '../db/plugin-store.js'
import type { ContainerSpec, ImagePullPolicy, ObservedContainer, VolumeMount } from '../runtime/container-runtime.js'

/**
 * One step against Docker (or the port allocator), with the reason it is taken. A `start`
 * without a container id acts on the plan's container: the one observed, or the one its
 * `create` made.
 */
export type Action =
  /** Make sure the image is there per the policy, before anything else changes (Always pulls). */
  | { kind: 'pull'; image: string; policy: ImagePullPolicy; cause: string }
  /** Create the plugin's named volumes that do not exist yet, labelled as ours. */
  | { kind: 'ensure-volumes'; volumes: { name: string; labels: Record<string, string> }[]; cause: string }
  /**
   * Create the container (under `name` when not the spec's own: a rollout's temporary name).
   * When the engine has no such image, apply `missingImage` as `docker run` does:
   * IfNotPresent pulls it and creates again, Never refuses. Absent: the image was made sure
   * of by the plan already, so a missing one is an error.
   */
  | { kind: 'create'; spec: ContainerSpec; name?: string; extraVolumes?: VolumeMount[]; missingImage?: Exclude<ImagePullPolicy, 'Always'>; cause: string }
  | { kind: 'start'; containerId?: string; cause: string }
  | { kind: 'stop'; containerId: string; cause: string }
  /** Anonymous volumes are kept (a recreate carries them over) unless `anonymousVolumes`. */
  | { kind: 'remove'; containerId: string; anonymousVolumes?: boolean; cause: string }
  /** Renaming to the plugin's own name makes that container the plugin's container in the status. */
  | { kind: 'rename'; containerId: string; name: string; cause: string }
  /** Give up an allocated host port found taken outside FlowForge; the next look allocates another. */
  | { kind: 'release-port'; hostPort: number; cause: string }
  /** Join the installation network under these DNS names (no recreate). */
  | { kind: 'connect-network'; containerId: string; network: string; aliases: string[]; cause: string }
  | { kind: 'disconnect-network'; containerId: string; network: string; cause: string }
  /** A second host port from HOST_PORT_RANGE for a start-first update, kept in status.rollout.toHostPort. */
  | { kind: 'reserve-port'; cause: string }
  | { kind: 'remove-volumes'; names: string[]; cause: string }

export type ActionKind = Action['kind']

export interface PlannedEvent {
  type: string
  data: Record<string, unknown>
}

export interface Plan {
  actions: Action[]
  /** Phase to show while the actions run (installing, stopping, ...). */
  transitionPhase?: Plugin['status']
  /** Status to write once every action succeeded (only fields that differ are written). */
  status: PluginStatusUpdate
  /** Recorded once every action succeeded, in the same statement as the status. */
  events: PlannedEvent[]
  /** Once every action succeeded, delete the plugin's row (after recording the events) instead of writing status. */
  deleteRow?: { cause: string }
  /** The plan answers the pending one-off restart request: it is taken off the list. */
  takesRestartRequest?: true
  /** Whom the events are about when the plugin's row is already gone (its container is removed). */
  subject?: { pluginId: null; forgehookId: string }
  /**
   * The plan does not bring the plugin to its generation (a rollout under way, failed or
   * rolled back): observed_generation is left as it is, so plugin_drift shows the gap.
   */
  leavesGenerationUnobserved?: true
  /** A rollout step: how a failed action of it is answered (plan-recovery.ts). */
  rolloutStage?: 'prepare' | 'switch'
  /** Look again after this long (crash-loop backoff, conflicts, the 10-minute reset). */
  requeueAfterMs?: number
}

export interface CrashLoopPolicy {
  /** First restart delay. Default 10 s. */
  initialDelayMs: number
  /** Cap. Default 5 min. */
  maxDelayMs: number
  /** Running this long resets restart_count. Default 10 min. */
  resetAfterMs: number
}

export const DEFAULT_CRASH_LOOP: CrashLoopPolicy = { initialDelayMs: 10_000, maxDelayMs: 300_000, resetAfterMs: 600_000 }

/** How long a plugin stuck on a conflict waits before the next look. */
export const CONFLICT_RETRY_MS = 30_000

/** The container the plugin should have, or why none can be built (bad manifest). */
export type WantedContainer = { ok: true; spec: ContainerSpec; pullPolicy: ImagePullPolicy } | { ok: false; error: string }

/** Whether the new container of a rollout answers (its health check, or its port). */
export interface CandidateProbe {
  ok: boolean
  /** What was seen: `GET /health answered 200`, `connection refused`. */
  detail: string
}

/** What is observed of an update in progress, beside the plugin's own container. */
export interface RolloutFacts {
  /** forgehook-<name>_next: the new container being prepared. */
  next?: ObservedContainer
  /** forgehook-<name>_previous: the old container while the new one proves itself (Recreate). */
  previous?: ObservedContainer
  /** Start first: the new container's spec, on the port reserved in status.rollout.toHostPort. */
  candidate?: ContainerSpec
  /** The new container's readiness, looked at when a rollout is verifying. */
  probe?: CandidateProbe
  /** Requests this manager is proxying to the old port (start-first drain). */
  oldInFlight?: number
}

export interface RolloutSettings {
  /** Without a health check, how long a new container must keep running (at most the healthy timeout). Default 5 s. */
  stableWindowMs: number
  /** Longest wait for proxied requests to the old container after a start-first switch. Default 10 s. */
  drainTimeoutMs: number
  /** Shortest wait after the switch, for requests that other managers proxy. Default 1 s. */
  minDrainMs: number
}

export const DEFAULT_ROLLOUT_SETTINGS: RolloutSettings = { stableWindowMs: 5_000, drainTimeoutMs: 10_000, minDrainMs: 1_000 }

export interface PlanInput {
  plugin: Plugin
  /** The container named forgehook-<name>, whoever made it. */
  container: ObservedContainer | undefined
  wanted: WantedContainer
  /** Why no host port could be had (the requested one is another plugin's, the range is full). */
  portProblem?: string
  now: number
  crashLoop?: CrashLoopPolicy
  /** Restart the running container once (health checks failing, an operator's restart). */
  restartRequested?: string
  /**
   * The container under our name is one of ours, left by a plugin whose row no longer
   * exists (a database recreated while containers kept running): replace it, not a conflict.
   */
  containerOwnerGone?: boolean
  rollout?: RolloutFacts
  rolloutSettings?: RolloutSettings
  /** The installation network (flowforge-<instance>), when there is one: an isolated plugin's container is taken off it. */
  installationNetwork?: string
}

/** What went wrong performing one action, as a fact the planner decides on. */
export type ActionFailure =
  /** The image is not on the engine and could not be pulled (or the policy forbids pulling). */
  | { kind: 'image-missing'; error: string }
  /** The registry refused the pull for want of (valid) credentials: `registry authentication failed for HOST (…)`. */
  | { kind: 'registry-auth'; registryHost: string; error: string }
  /** Create found the name taken; `holder` is that container as inspected (absent: gone again). */
  | { kind: 'name-taken'; holder: ObservedContainer | undefined }
  /** Start found the host port taken by something outside FlowForge. */
  | { kind: 'port-in-use'; error: string }
  /** A named volume of that name exists but is not this plugin's. */
  | { kind: 'volume-taken'; error: string }
  /** No second host port is free for a start-first update. */
  | { kind: 'no-port'; error: string }

/** The planner's answer to a failed action. */
export type Recovery =
  /** The action's goal is met after all (the name is held by our own container): carry on with it. */
  | { kind: 'continue-with'; containerId: string; cause: string }
  /**
   * Stop the plan: run `plan` (its actions, status and events), then either retry with
   * the queue's backoff (the failure is rethrown) or wait for `plan.requeueAfterMs`.
   */
  | { kind: 'abort'; plan: Plan; retry: boolean }
