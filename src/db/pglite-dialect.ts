// kysely-pglite-dialect, with two changes for the embedded engine:
// - every Kysely connection holds the SessionGate, so SQL-port clients never interleave
//   with a statement or transaction of ours (and the other way round);
// - a query without parameters runs through the simple query protocol (PGlite's exec), as
//   node-postgres does, so multi-statement scripts such as migrations behave the same on
//   both engines;
// - a registered statement (prepared-statements.ts) runs prepared.
import type { PGlite } from '@electric-sql/pglite'
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import { preparedName, type PgliteStatements } from './prepared-statements.js'
import type { SessionGate } from './session-gate.js'

export class GatedPgliteDialect implements Dialect {
  private readonly inner: PGliteDialect

  constructor(
    private readonly pglite: PGlite,
    private readonly gate: SessionGate,
    private readonly statements: PgliteStatements,
  ) {
    this.inner = new PGliteDialect(pglite)
  }

  createAdapter() {
    return this.inner.createAdapter()
  }

  createDriver(): Driver {
    return new GatedDriver(this.inner.createDriver(), this.pglite, this.gate, this.statements)
  }

  createQueryCompiler() {
    return this.inner.createQueryCompiler()
  }

  createIntrospector(db: Kysely<unknown>) {
    return this.inner.createIntrospector(db)
  }
}

class GatedConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    readonly owner: symbol,
    private readonly pglite: PGlite,
    private readonly statements: PgliteStatements,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const name = preparedName(compiledQuery.sql)
    if (name === undefined && compiledQuery.parameters.length > 0) return this.inner.executeQuery<R>(compiledQuery)
    const last = name !== undefined ? await this.statements.execute(name, compiledQuery.sql, compiledQuery.parameters) : (await this.pglite.exec(compiledQuery.sql)).at(-1)
    const affected = last?.affectedRows ?? 0
    return {
      rows: (last?.rows ?? []) as R[],
      ...(affected > 0 ? { numAffectedRows: BigInt(affected) } : {}),
    }
  }

  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(compiledQuery, chunkSize)
  }
}

class GatedDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly pglite: PGlite,
    private readonly gate: SessionGate,
    private readonly statements: PgliteStatements,
  ) {}

  init(): Promise<void> {
    return this.inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const owner = Symbol('kysely-connection')
    await this.gate.acquire(owner)
    try {
      return new GatedConnection(await this.inner.acquireConnection(), owner, this.pglite, this.statements)
    } catch (error) {
      this.gate.release(owner)
      throw error
    }
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(unwrap(connection), settings)
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(unwrap(connection))
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(unwrap(connection))
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const gated = connection as GatedConnection
    try {
      await this.inner.releaseConnection(gated.inner)
    } finally {
      this.gate.release(gated.owner)
    }
  }

  destroy(): Promise<void> {
    return this.gate.run(() => this.inner.destroy())
  }
}

function unwrap(connection: DatabaseConnection): DatabaseConnection {
  return (connection as GatedConnection).inner
}
