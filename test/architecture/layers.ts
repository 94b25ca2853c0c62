// The layers of src/, lowest first: a file may import files of its own folder and of folders
// in lower layers, never of its own layer's other folders or of a higher one (type-only
// imports included). Folders that share a layer do not know each other. A new top folder or
// root file of src/ must be placed here before the import-graph test passes.
// Derived from ARCHITECTURE.md's flow: inputs write the store, the controller reads it and
// drives the runtime; the API and forgectl sit on top of everything they show or start.
export const LAYERS: readonly (readonly string[])[] = [
  // Clock, backoff, timers, uuids, DNS labels: no domain knowledge, nothing of ours below.
  ['util'],
  // The one reader of process.env.
  ['config.ts'],
  // pino set up once (takes its level type from config).
  ['logger.ts'],
  // The two edges of the system: the store (Postgres) and the runtime (Docker). Independent.
  ['db', 'runtime'],
  // The plugin spec document, and its mapping onto store rows and container specs.
  ['spec'],
  // The control loop, and the non-HTTP desired-state input (spec folder): neither calls the other.
  ['controller', 'sources'],
  // The control loop on the swarm runtime (RUNTIME=swarm): plugins as services; it reuses the
  // controller's queue, workers, port allocator and adoption.
  ['swarm'],
  // HTTP: reads the store and the controller's and spec folder's views.
  ['api'],
  // The web console: pages beside the API, mounted into it through ApiDependencies.console;
  // it reads the store and the event stream and writes through the API's own routes.
  ['web'],
  // The parts the composition root connects: a leader's term, who leads, the restart route.
  ['daemon'],
  // The composition root builds everything above.
  ['main.ts'],
  // forgectl: `serve` starts main; the client commands speak the API's objects.
  ['cli'],
]
