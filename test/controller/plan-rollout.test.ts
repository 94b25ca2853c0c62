// Golden text of every step of an update, of what a manager killed between two steps
// leaves behind, and of what survives an update or an uninstall (the cases are in
// rollout-scenarios.ts). One readable line per action, then what is recorded.
import { describe, expect, test } from 'vitest'
import { DATA_SCENARIOS, SCENARIOS } from './rollout-scenarios.js'

const ROLLOUT: Record<string, string[]> = {
  "Recreate, prepare: the image is made sure of and the new container created beside the old one, which is not touched": [
    "pull flowforge/crypto:2 (IfNotPresent)  # update, Recreate: the new container is prepared before the old one is touched",
    "create forgehook-crypto_next image=flowforge/crypto:2 port=127.0.0.1:4100->8080  # update, Recreate: the new container is prepared before the old one is touched",
    "status rollout={\"phase\":\"progressing\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rollout-started {\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"changedFields\":[\"image\"]}",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "Recreate, switch, first half: the names change hands while the old one still serves": [
    "rename c0ffee000000 forgehook-crypto_previous  # kept until the new one proves itself; it serves until the new one starts",
    "rename beef00000000 forgehook-crypto  # update, Recreate: the new container takes the name",
    "status rollout={\"phase\":\"progressing\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "Recreate, switch, second half: the old one stops and the new one starts, the row starting meanwhile": [
    "stop c0ffee000000  # update, Recreate: the new container takes over",
    "start beef00000000  # update, Recreate: the new container takes over",
    "status status=\"running\" error=null nextRestartAt=null restartCount=0 rollout={\"phase\":\"verifying\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:59.000Z\",\"switchedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "generation left unobserved",
    "requeue after 1000 ms",
  ],
  "a newer spec between the two halves of a switch: the names go back and the old one keeps serving, never stopped": [
    "rename beef00000000 forgehook-crypto_next  # a newer spec replaces the rollout before its container started: the old one keeps serving",
    "rename c0ffee000000 forgehook-crypto  # a newer spec replaces the rollout before its container started: the old one keeps serving",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "Recreate, verify: without a health check the new one must keep running 5 s and answer on its port": [
    "status rollout={\"phase\":\"verifying\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:58.000Z\"}",
    "generation left unobserved",
    "requeue after 1000 ms",
  ],
  "Recreate, verify passed: the old container goes and the generation is observed": [
    "remove c0ffee000000  # update complete: the old container is not needed any more",
    "status status=\"running\" error=null containerId=\"beef00000000111122223333\" rollout={\"phase\":\"complete\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:54.000Z\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:updated {\"changedFields\":[\"image\"],\"previousContainerId\":\"c0ffee000000aaaabbbbcccc\",\"image\":\"flowforge/crypto:2\",\"strategy\":\"Recreate\",\"hostPort\":4100}",
  ],
  "Recreate, rollback: a new container that exits is removed and the old one serves again": [
    "remove beef00000000  # rollback: the new container exited with code 3",
    "rename c0ffee000000 forgehook-crypto  # rollback: the previous container serves again",
    "start c0ffee000000  # rollback: the previous container serves again",
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: the new container exited with code 3; flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" containerId=\"c0ffee000000aaaabbbbcccc\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:58.000Z\",\"error\":\"the new container exited with code 3\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"the new container exited with code 3\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"Recreate\",\"failedContainerId\":\"beef00000000111122223333\",\"exitCode\":3,\"oomKilled\":false}",
    "generation left unobserved",
  ],
  "Recreate, rollback: an unhealthy HEALTHCHECK rolls back at once, with its last output": [
    "stop beef00000000  # rollback: the new container is unhealthy (last check: curl: (7) Failed to connect)",
    "remove beef00000000  # rollback: the new container is unhealthy (last check: curl: (7) Failed to connect)",
    "rename c0ffee000000 forgehook-crypto  # rollback: the previous container serves again",
    "start c0ffee000000  # rollback: the previous container serves again",
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: the new container is unhealthy (last check: curl: (7) Failed to connect); flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" containerId=\"c0ffee000000aaaabbbbcccc\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:58.000Z\",\"error\":\"the new container is unhealthy (last check: curl: (7) Failed to connect)\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"the new container is unhealthy (last check: curl: (7) Failed to connect)\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"Recreate\",\"failedContainerId\":\"beef00000000111122223333\",\"healthOutput\":\"curl: (7) Failed to connect\"}",
    "generation left unobserved",
  ],
  "Recreate, rollback: a health path not answering 2xx within healthyTimeoutSeconds": [
    "stop beef00000000  # rollback: the new container was not healthy within 10 s (GET /health answered 503)",
    "remove beef00000000  # rollback: the new container was not healthy within 10 s (GET /health answered 503)",
    "rename c0ffee000000 forgehook-crypto  # rollback: the previous container serves again",
    "start c0ffee000000  # rollback: the previous container serves again",
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: the new container was not healthy within 10 s (GET /health answered 503); flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" containerId=\"c0ffee000000aaaabbbbcccc\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:49.000Z\",\"error\":\"the new container was not healthy within 10 s (GET /health answered 503)\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"the new container was not healthy within 10 s (GET /health answered 503)\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"Recreate\",\"failedContainerId\":\"beef00000000111122223333\",\"healthOutput\":\"GET /health answered 503\"}",
    "generation left unobserved",
  ],
  "after a rollback nothing is updated until the spec changes or a retry is asked; the old one is kept running": [
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: the new container exited with code 3; flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" nextRestartAt=null containerId=\"c0ffee000000aaaabbbbcccc\"",
    "generation left unobserved",
  ],
  "after a rollback the old container is still restarted when it crashes": [
    "status status=\"error\" error=\"container exited with code 1; restart 1 in 10 s\" restartCount=1 nextRestartAt=2026-03-01T12:00:10.000Z containerId=\"c0ffee000000aaaabbbbcccc\"",
    "event plugin:crashed {\"containerId\":\"c0ffee000000aaaabbbbcccc\",\"exitCode\":1,\"oomKilled\":false,\"restartCount\":1,\"restartInMs\":10000}",
    "generation left unobserved",
    "requeue after 10000 ms",
  ],
  "a retry asked after the rollback prepares the same generation again": [
    "pull flowforge/crypto:2 (IfNotPresent)  # update, Recreate: the new container is prepared before the old one is touched",
    "create forgehook-crypto_next image=flowforge/crypto:2 port=127.0.0.1:4100->8080  # update, Recreate: the new container is prepared before the old one is touched",
    "status rollout={\"phase\":\"progressing\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rollout-started {\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"changedFields\":[\"image\"]}",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "manager stopped between the two renames of a switch: the new container takes the name": [
    "rename beef00000000 forgehook-crypto  # the switch had begun: the new container takes the name",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "manager stopped in a rollback after the new one was removed: the old one takes its name back": [
    "rename c0ffee000000 forgehook-crypto  # the rollback had begun: the old container takes its name back",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "manager stopped in a rollback after the old one took its name back: the rollback is recorded, the old one started, the release not tried again": [
    "start c0ffee000000  # rollback: the previous container serves again",
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded); flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" nextRestartAt=null containerId=\"c0ffee000000aaaabbbbcccc\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:58.000Z\",\"error\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"Recreate\",\"recordedLate\":\"the rollback ran, its record did not (a manager stopped)\"}",
    "generation left unobserved",
  ],
  "manager stopped in a rollback that had restarted the old one: the rollback is recorded, nothing else is done": [
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded); flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" nextRestartAt=null containerId=\"c0ffee000000aaaabbbbcccc\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:57.000Z\",\"switchedAt\":\"2026-03-01T11:59:58.000Z\",\"error\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"Recreate\",\"recordedLate\":\"the rollback ran, its record did not (a manager stopped)\"}",
    "generation left unobserved",
  ],
  "a container prepared for another spec is a leftover and goes": [
    "remove dead0000aaaa  # a leftover of a rollout: it was prepared for another spec",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "StartFirst, first a second port is reserved": [
    "reserve-port  # start first: the new container runs beside the old one on a port of its own",
    "status rollout={\"phase\":\"progressing\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rollout-started {\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"changedFields\":[\"image\"]}",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "StartFirst, prepare: the new container is created and started on the reserved port beside the old one": [
    "pull flowforge/crypto:2 (IfNotPresent)  # update, StartFirst: the new container is prepared before the old one is touched",
    "create forgehook-crypto_next image=flowforge/crypto:2 port=127.0.0.1:4101->8080  # update, StartFirst: the new container is prepared before the old one is touched",
    "start  # start first: it runs beside the old one until it is healthy",
    "status rollout={\"phase\":\"verifying\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:59.900Z\",\"toHostPort\":4101}",
    "generation left unobserved",
    "requeue after 1000 ms",
  ],
  "StartFirst, verify passed: the row's host port moves to the new container (the proxy follows it)": [
    "status hostPort=4101 rollout={\"phase\":\"draining\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:54.000Z\",\"toHostPort\":4101,\"switchedAt\":\"2026-03-01T12:00:00.000Z\",\"fromHostPort\":4100}",
    "generation left unobserved",
    "requeue after 1000 ms",
  ],
  "StartFirst, drain: the old one is kept while the proxy still has requests on it": [
    "status rollout={\"phase\":\"draining\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:54.000Z\",\"toHostPort\":4101,\"switchedAt\":\"2026-03-01T11:59:58.500Z\",\"fromHostPort\":4100}",
    "generation left unobserved",
    "requeue after 200 ms",
  ],
  "StartFirst, drained: the old one is stopped and removed, the new one takes the name": [
    "stop c0ffee000000  # start first: the old container has drained",
    "remove c0ffee000000  # start first: the old container has drained",
    "rename beef00000000 forgehook-crypto  # start first: the new container takes the plugin's name",
    "status status=\"running\" error=null nextRestartAt=null restartCount=0 rollout={\"phase\":\"complete\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:54.000Z\",\"toHostPort\":4101,\"switchedAt\":\"2026-03-01T11:59:58.500Z\",\"fromHostPort\":4100,\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:updated {\"changedFields\":[\"image\",\"hostPort\"],\"previousContainerId\":\"c0ffee000000aaaabbbbcccc\",\"image\":\"flowforge/crypto:2\",\"strategy\":\"StartFirst\",\"hostPort\":{\"from\":4100,\"to\":4101}}",
  ],
  "StartFirst, a new container that exits is discarded; the old one never stopped": [
    "remove beef00000000  # rollback: the new container exited with code 1",
    "status error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: the new container exited with code 1; flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:54.000Z\",\"error\":\"the new container exited with code 1\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"the new container exited with code 1\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"StartFirst\",\"failedContainerId\":\"beef00000000111122223333\",\"exitCode\":1,\"oomKilled\":false}",
    "generation left unobserved",
  ],
  "StartFirst, manager stopped in a rollback of the drain after the new one was removed: the port goes back to the old one, the rollback is recorded": [
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded); flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" nextRestartAt=null containerId=\"c0ffee000000aaaabbbbcccc\" hostPort=4100 rollout={\"phase\":\"rolled-back\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:54.000Z\",\"switchedAt\":\"2026-03-01T11:59:58.500Z\",\"fromHostPort\":4100,\"error\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"StartFirst\",\"recordedLate\":\"the rollback ran, its record did not (a manager stopped)\"}",
    "generation left unobserved",
  ],
  "StartFirst, manager stopped in a rollback of the verification after the new one was removed: the rollback is recorded, the old one serves on": [
    "status status=\"running\" error=\"the update to flowforge/crypto:2 (generation 2) was rolled back: a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded); flowforge/crypto:1 keeps running (forgectl rollout retry to try again)\" nextRestartAt=null containerId=\"c0ffee000000aaaabbbbcccc\" rollout={\"phase\":\"rolled-back\",\"strategy\":\"StartFirst\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T11:59:54.000Z\",\"error\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"finishedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rolled-back {\"reason\":\"a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)\",\"generation\":2,\"failedImage\":\"flowforge/crypto:2\",\"restoredImage\":\"flowforge/crypto:1\",\"strategy\":\"StartFirst\",\"recordedLate\":\"the rollback ran, its record did not (a manager stopped)\"}",
    "generation left unobserved",
  ],
  "a failed preparation leaves the old version serving, says so, and is retried with backoff": [
    "abort, then retry with backoff",
    "status error=\"the update to flowforge/crypto:2 failed, the previous version keeps running: image not found: flowforge/crypto:2 (manifest unknown)\" rollout={\"phase\":\"failed\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T12:00:00.000Z\",\"error\":\"image not found: flowforge/crypto:2 (manifest unknown)\"}",
    "event plugin:rollout-failed {\"error\":\"image not found: flowforge/crypto:2 (manifest unknown)\",\"toImage\":\"flowforge/crypto:2\",\"generation\":2}",
    "generation left unobserved",
  ],
}

const DATA: Record<string, string[]> = {
  "named volumes are created, labelled as ours, before the container that mounts them": [
    "ensure-volumes forgehook-crypto-data forgehook-crypto-conf  # named volumes of forgehook-crypto",
    "create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080 mount=forgehook-crypto-data:/var/lib/crypto mount=forgehook-crypto-conf:/etc/crypto:ro if-image-missing=pull  # the plugin has no container yet",
    "start  # desired state is running",
    "status status=\"running\" error=null nextRestartAt=null restartCount=0",
    "event plugin:installed {\"image\":\"flowforge/crypto:1\",\"hostPort\":4100}",
    "event plugin:started {\"hostPort\":4100}",
  ],
  "an update mounts the old container's anonymous volumes (an image VOLUME) in the new one": [
    "pull flowforge/crypto:2 (IfNotPresent)  # update, Recreate: the new container is prepared before the old one is touched",
    "create forgehook-crypto_next image=flowforge/crypto:2 port=127.0.0.1:4100->8080 mount=aaaaaaaaaaaa:/cache  # update, Recreate: the new container is prepared before the old one is touched",
    "status rollout={\"phase\":\"progressing\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"startedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rollout-started {\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"flowforge/crypto:1\",\"toImage\":\"flowforge/crypto:2\",\"changedFields\":[\"image\"]}",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "uninstall with purge removes a rollout's container, the container with its anonymous volumes, and the named volumes": [
    "remove beef00000000  # the plugin is being uninstalled (a rollout's container)",
    "stop c0ffee000000  # the plugin is being uninstalled",
    "remove c0ffee000000 with its anonymous volumes  # the plugin is being uninstalled",
    "remove-volumes forgehook-crypto-data forgehook-crypto-conf  # deleted with purge: its named volumes go too",
    "delete-row  # deletion was requested",
    "event plugin:uninstalled {\"containerId\":\"c0ffee000000aaaabbbbcccc\"}",
    "event plugin:volumes-purged {\"volumes\":[\"forgehook-crypto-data\",\"forgehook-crypto-conf\"]}",
  ],
  "uninstall without purge keeps the named volumes": [
    "stop c0ffee000000  # the plugin is being uninstalled",
    "remove c0ffee000000  # the plugin is being uninstalled",
    "delete-row  # deletion was requested",
    "event plugin:uninstalled {\"containerId\":\"c0ffee000000aaaabbbbcccc\"}",
  ],
  "an adopted container (no labels of ours) is kept as it is while its spec is the adopted one": [
    "status status=\"running\" error=null nextRestartAt=null containerId=\"abcabc000000\"",
  ],
  "an adopted container is replaced by one of ours at the first spec change, through a rollout": [
    "pull flowforge/crypto:1 (IfNotPresent)  # update, Recreate: the new container is prepared before the old one is touched",
    "create forgehook-crypto_next image=flowforge/crypto:1 port=127.0.0.1:4100->8080  # update, Recreate: the new container is prepared before the old one is touched",
    "status rollout={\"phase\":\"progressing\",\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"legacy:1\",\"toImage\":\"flowforge/crypto:1\",\"startedAt\":\"2026-03-01T12:00:00.000Z\"}",
    "event plugin:rollout-started {\"strategy\":\"Recreate\",\"generation\":2,\"fromImage\":\"legacy:1\",\"toImage\":\"flowforge/crypto:1\",\"changedFields\":[\"image\",\"env\",\"containerPort\",\"hostPort\",\"hostIp\",\"memoryMb\",\"cpus\"]}",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
  "deleting an adopted plugin removes its container: once adopted it is ours": [
    "stop abcabc000000  # the plugin is being uninstalled",
    "remove abcabc000000  # the plugin is being uninstalled",
    "delete-row  # deletion was requested",
    "event plugin:uninstalled {\"containerId\":\"abcabc000000\"}",
  ],
  "an adopted plugin whose row was deleted in SQL: the tombstone names its container, which goes": [
    "stop abcabc000000  # its plugin was deleted",
    "remove abcabc000000  # its plugin was deleted",
    "events about crypto (its row is gone)",
    "event plugin:uninstalled {\"containerId\":\"abcabc000000\",\"pluginId\":\"11111111-1111-4111-8111-111111111111\"}",
  ],
  "a tombstone never makes another container under the name go": [
    "",
  ],
  "stopped in the middle of a rollout: the container under the plugin's name stays, the rollout's go": [
    "remove p00000000000  # desired state is stopped: the rollout ends here",
    "generation left unobserved",
    "requeue after 0 ms",
  ],
}

for (const [title, cases, golden] of [['plan: rollouts', SCENARIOS, ROLLOUT], ['plan: volumes, deletions, adoption', DATA_SCENARIOS, DATA]] as const) {
  describe(title, () => {
    for (const [name, make] of Object.entries(cases)) {
      test(name, () => expect(make()).toBe(golden[name]!.join('\n')))
    }
    test('every case has its golden text', () => expect(Object.keys(golden).sort()).toEqual(Object.keys(cases).sort()))
  })
}
