// Registry credentials from a Docker config.json (REGISTRY_AUTH_FILE: the file `docker
// login` writes), looked up the way the Docker CLI looks them up, for the X-Registry-Auth
// header of each pull.
//
// The file is looked at (stat) before every pull and read again when it changed, so a
// `docker login` after the start is used by the next pull, without a restart.
// Credential helpers (`credsStore`, `credHelpers`) are not supported: they run programs.
// A host they would serve gets no credentials, and the log says so once.
//
// Credentials never leave this module but in the header: not in logs, errors or messages
// (a JSON syntax error is not quoted either: Node's message quotes the text around it).
import { readFile as readFileAsync, stat as statAsync } from 'node:fs/promises'
import type { Logger } from '../logger.js'
import { configKeyFor, DOCKER_HUB, hostnameOfConfigKey, parseImageReference } from './image-reference.js'

/** What X-Registry-Auth carries to the engine (the shape of Docker's AuthConfig). */
export interface RegistryCredentials {
  username?: string
  password?: string
  identitytoken?: string
  serveraddress: string
}

export interface RegistryAuthLookup {
  registryHost: string
  /** Absent: the pull goes without credentials. */
  credentials?: RegistryCredentials
  /** For messages, without any secret: `credentials for 127.0.0.1:5000 from /etc/flowforge/config.json`, `no credentials for … in …`. */
  description: string
}

/** What a pull asks for; DockerRuntime depends on this, not on the file. */
export interface RegistryAuth {
  lookup(image: string): Promise<RegistryAuthLookup>
}

/** Without REGISTRY_AUTH_FILE: every pull goes without credentials, as before. */
export const NO_REGISTRY_AUTH: RegistryAuth = {
  lookup: async (image) => {
    const { registryHost } = parseImageReference(image)
    return { registryHost, description: `no credentials for ${registryHost} (REGISTRY_AUTH_FILE is not set)` }
  },
}

/** The file system calls the file needs; injected so that tests can count or fake them. */
export interface AuthFileSystem {
  stat(path: string): Promise<{ mtimeMs: number; size: number; ino: number }>
  readFile(path: string, encoding: 'utf8'): Promise<string>
}

const NODE_FS: AuthFileSystem = { stat: (path) => statAsync(path), readFile: (path, encoding) => readFileAsync(path, encoding) }

/** config.json is a few hundred bytes; anything this large is not one. */
const MAX_FILE_BYTES = 1024 * 1024

interface Entry {
  username?: string
  password?: string
  identitytoken?: string
}

interface Loaded {
  /** stat of the version read: mtime, size and inode (a rename-replace changes the inode). */
  version: string
  entries: Map<string, Entry>
  /** Why the file gives nothing, when it does not (missing, not JSON, too large). */
  problem?: string
}

export interface RegistryAuthFileOptions {
  path: string
  logger: Logger
  fs?: AuthFileSystem
}

export class RegistryAuthFile implements RegistryAuth {
  private readonly path: string
  private readonly log: Logger
  private readonly fs: AuthFileSystem
  private loaded: Loaded | undefined
  /** Problems already logged: each is logged once, again only after it went away. */
  private readonly reported = new Set<string>()

  constructor(options: RegistryAuthFileOptions) {
    this.path = options.path
    this.log = options.logger.child({ component: 'registry-auth' })
    this.fs = options.fs ?? NODE_FS
  }

  async lookup(image: string): Promise<RegistryAuthLookup> {
    const { registryHost } = parseImageReference(image)
    const loaded = await this.current()
    if (loaded.problem) return { registryHost, description: `no credentials for ${registryHost}: ${loaded.problem}` }
    const found = findEntry(loaded.entries, registryHost)
    if (!found) return { registryHost, description: `no credentials for ${registryHost} in ${this.path}` }
    const { key, entry } = found
    if (!entry.identitytoken && !(entry.username && entry.password !== undefined)) {
      // What `docker login` writes when a credential helper holds the secret: an empty entry.
      return { registryHost, description: `no credentials for ${registryHost} in ${this.path} (its entry ${key} holds none: a credential helper's?)` }
    }
    const credentials: RegistryCredentials = { ...entry, serveraddress: registryHost === DOCKER_HUB ? key : registryHost }
    return { registryHost, credentials, description: `credentials for ${registryHost} from ${this.path}` }
  }

  /** The file as it is now: read again only when its stat changed. */
  private async current(): Promise<Loaded> {
    let version: string
    try {
      const stats = await this.fs.stat(this.path)
      version = `${stats.mtimeMs}:${stats.size}:${stats.ino}`
      if (stats.size > MAX_FILE_BYTES) return this.settle({ version, entries: new Map(), problem: `${this.path} is over 1 MiB, not a Docker config.json` })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const problem = code === 'ENOENT' ? `${this.path} does not exist (yet: \`docker login\` writes it)` : `${this.path} cannot be read (${code ?? (error as Error).message})`
      return this.settle({ version: `error:${problem}`, entries: new Map(), problem })
    }
    if (this.loaded?.version === version) return this.loaded
    let text: string
    try {
      text = await this.fs.readFile(this.path, 'utf8')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      return this.settle({ version, entries: new Map(), problem: `${this.path} cannot be read (${code ?? (error as Error).message})` })
    }
    return this.settle(this.parse(version, text))
  }

  private parse(version: string, text: string): Loaded {
    let document: unknown
    try {
      document = JSON.parse(text)
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error
      return { version, entries: new Map(), problem: `${this.path} is not valid JSON` }
    }
    if (document === null || typeof document !== 'object' || Array.isArray(document)) {
      return { version, entries: new Map(), problem: `${this.path} is not a JSON object` }
    }
    const { auths, credsStore, credHelpers } = document as { auths?: unknown; credsStore?: unknown; credHelpers?: unknown }
    this.reportHelpers(credsStore, credHelpers)
    const entries = new Map<string, Entry>()
    if (auths === null || typeof auths !== 'object' || Array.isArray(auths)) return { version, entries }
    for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
      const entry = decodeEntry(value)
      if (entry === 'invalid') {
        this.reportOnce(`${this.path}: the auth of ${key} is not base64 of user:password; that entry is ignored`)
        continue
      }
      entries.set(key, entry)
    }
    return { version, entries }
  }

  private settle(loaded: Loaded): Loaded {
    if (loaded.problem) this.reportOnce(`registry credentials: ${loaded.problem}; pulls go without credentials`)
    else for (const problem of [...this.reported]) if (problem.startsWith('registry credentials: ')) this.reported.delete(problem)
    this.loaded = loaded
    return loaded
  }

  private reportHelpers(credsStore: unknown, credHelpers: unknown): void {
    const helpers: string[] = []
    if (typeof credsStore === 'string' && credsStore !== '') helpers.push(`credsStore "${credsStore}"`)
    if (credHelpers && typeof credHelpers === 'object') {
      const hosts = Object.keys(credHelpers)
      if (hosts.length > 0) helpers.push(`credHelpers for ${hosts.join(', ')}`)
    }
    if (helpers.length === 0) return
    this.reportOnce(`${this.path} names credential helpers (${helpers.join('; ')}), which FlowForge does not run: only the credentials written under "auths" are used; store them there (docker login with no credsStore configured)`)
  }

  private reportOnce(message: string): void {
    if (this.reported.has(message)) return
    this.reported.add(message)
    this.log.warn({ registryAuthFile: this.path }, message)
  }
}

/** The CLI's lookup: the exact key first, then a key whose host (without scheme and path) is the registry's. */
function findEntry(entries: Map<string, Entry>, registryHost: string): { key: string; entry: Entry } | undefined {
  const exactKey = configKeyFor(registryHost)
  const exact = entries.get(exactKey)
  if (exact) return { key: exactKey, entry: exact }
  // As the CLI's file store: Docker Hub's key is a URL, which no host name equals.
  if (registryHost === DOCKER_HUB) return undefined
  for (const [key, entry] of entries) if (hostnameOfConfigKey(key) === registryHost) return { key, entry }
  return undefined
}

/** `auth` (base64 of user:password) wins over username/password, as in the CLI. */
function decodeEntry(value: unknown): Entry | 'invalid' {
  if (value === null || typeof value !== 'object') return {}
  const { auth, username, password, identitytoken } = value as Record<string, unknown>
  const entry: Entry = {}
  if (typeof username === 'string' && username !== '') entry.username = username
  if (typeof password === 'string') entry.password = password
  if (typeof identitytoken === 'string' && identitytoken !== '') entry.identitytoken = identitytoken
  if (typeof auth === 'string' && auth !== '') {
    const decoded = Buffer.from(auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon <= 0 || !/^[A-Za-z0-9+/=\s]+$/.test(auth)) return 'invalid'
    entry.username = decoded.slice(0, colon)
    entry.password = decoded.slice(colon + 1)
  }
  return entry
}

/** X-Registry-Auth: base64url of the JSON, as the Docker CLI sends it. */
export function registryAuthHeader(credentials: RegistryCredentials): string {
  return Buffer.from(JSON.stringify(credentials)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')
}

/** A text with every secret of the credentials replaced by ***, for whatever quotes the engine's words. */
export function redactCredentials(text: string, credentials: RegistryCredentials | undefined): string {
  if (!credentials) return text
  const secrets = [credentials.password, credentials.identitytoken, registryAuthHeader(credentials)]
  if (credentials.username && credentials.password !== undefined) secrets.push(Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64'))
  let redacted = text
  for (const secret of secrets) if (secret && secret.length >= 3) redacted = redacted.split(secret).join('***')
  return redacted
}
