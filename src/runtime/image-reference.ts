// Image references read the way Docker reads them (distribution's reference package,
// splitDockerDomain): which registry an image comes from, and which repository it is.

/** The registry of references without a host part. */
export const DOCKER_HUB = 'docker.io'
/** The key `docker login` writes for Docker Hub into config.json (the CLI's registry.IndexServer). */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/'

export interface ImageReference {
  /** `docker.io`, `127.0.0.1:5000`, `registry.example.com`, `localhost:5000`. */
  registryHost: string
  /** Fully qualified, without tag or digest: `docker.io/library/busybox`, `127.0.0.1:5000/team/app`. */
  repository: string
  tag?: string
  digest?: string
}

/**
 * Docker's rule: the part before the first `/` is a registry host when it contains `.` or
 * `:`, is `localhost`, or has upper-case letters (a repository path never does); otherwise
 * the image is on Docker Hub. `index.docker.io` is Docker Hub's old name.
 */
export function parseImageReference(reference: string): ImageReference {
  const at = reference.indexOf('@')
  const digest = at === -1 ? undefined : reference.slice(at + 1)
  const named = at === -1 ? reference : reference.slice(0, at)
  const lastSlash = named.lastIndexOf('/')
  const colon = named.lastIndexOf(':')
  // A ':' after the last '/' starts a tag; one before it is a host's port.
  const tag = colon > lastSlash ? named.slice(colon + 1) : undefined
  const name = tag === undefined ? named : named.slice(0, colon)
  const slash = name.indexOf('/')
  const first = slash === -1 ? '' : name.slice(0, slash)
  const isHost = slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first)
  let registryHost = isHost ? first : DOCKER_HUB
  let path = isHost ? name.slice(slash + 1) : name
  if (registryHost === 'index.docker.io') registryHost = DOCKER_HUB
  if (registryHost === DOCKER_HUB && !path.includes('/')) path = `library/${path}`
  return { registryHost, repository: `${registryHost}/${path}`, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) }
}

/** The config.json key Docker looks up first for a registry host. */
export function configKeyFor(registryHost: string): string {
  return registryHost === DOCKER_HUB ? DOCKER_HUB_CONFIG_KEY : registryHost
}

/** The CLI's ConvertToHostname: a config.json key without its scheme and path. */
export function hostnameOfConfigKey(key: string): string {
  const stripped = key.startsWith('http://') ? key.slice('http://'.length) : key.startsWith('https://') ? key.slice('https://'.length) : key
  const slash = stripped.indexOf('/')
  return slash === -1 ? stripped : stripped.slice(0, slash)
}

/**
 * The manifest digest of `reference`'s repository among an image's RepoDigests
 * (`repo@sha256:…`, in Docker's short form such as `busybox@sha256:…`), if any.
 */
export function digestForRepository(reference: string, repoDigests: readonly string[]): string | undefined {
  const wanted = parseImageReference(reference).repository
  for (const entry of repoDigests) {
    const parsed = parseImageReference(entry)
    if (parsed.digest && parsed.repository === wanted) return parsed.digest
  }
  return undefined
}
