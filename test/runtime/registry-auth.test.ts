// Registry credentials from a Docker config.json, matched by host as the Docker CLI matches
// them, read again when the file changes, never quoted; and what a failed pull came to.
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { classifyPullFailure } from '../../src/runtime/docker-errors.js'
import { digestForRepository, parseImageReference } from '../../src/runtime/image-reference.js'
import { NO_REGISTRY_AUTH, redactCredentials, registryAuthHeader, RegistryAuthFile } from '../../src/runtime/registry-auth.js'
import { captureLogs } from '../helpers/log-capture.js'

const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64')

describe('image references, read as Docker reads them', () => {
  test.each([
    ['busybox', 'docker.io', 'docker.io/library/busybox'],
    ['busybox:1.36', 'docker.io', 'docker.io/library/busybox'],
    ['team/app:2', 'docker.io', 'docker.io/team/app'],
    ['docker.io/team/app', 'docker.io', 'docker.io/team/app'],
    ['index.docker.io/library/busybox', 'docker.io', 'docker.io/library/busybox'],
    ['localhost/app', 'localhost', 'localhost/app'],
    ['localhost:5000/x', 'localhost:5000', 'localhost:5000/x'],
    ['127.0.0.1:5000/team/app:1', '127.0.0.1:5000', '127.0.0.1:5000/team/app'],
    ['registry.example.com/app@sha256:abc', 'registry.example.com', 'registry.example.com/app'],
    ['Registry/app', 'Registry', 'Registry/app'],
    ['flowforge-test/http:1', 'docker.io', 'docker.io/flowforge-test/http'],
  ])('%s is on %s as %s', (reference, registryHost, repository) => {
    expect(parseImageReference(reference)).toMatchObject({ registryHost, repository })
  })

  test('a tag and a digest are told from a host port', () => {
    expect(parseImageReference('127.0.0.1:5000/app')).not.toHaveProperty('tag')
    expect(parseImageReference('127.0.0.1:5000/app:7')).toMatchObject({ tag: '7' })
    expect(parseImageReference('app@sha256:ff')).toMatchObject({ digest: 'sha256:ff', repository: 'docker.io/library/app' })
  })

  test("the digest of the reference's own repository is picked from RepoDigests, in Docker's short form too", () => {
    const repoDigests = ['127.0.0.1:5000/other@sha256:aaa', '127.0.0.1:5000/team/app@sha256:bbb', 'busybox@sha256:ccc']
    expect(digestForRepository('127.0.0.1:5000/team/app:1', repoDigests)).toBe('sha256:bbb')
    expect(digestForRepository('docker.io/library/busybox:latest', repoDigests)).toBe('sha256:ccc')
    expect(digestForRepository('flowforge-test/http:1', repoDigests)).toBeUndefined()
  })
})

describe('credentials from a Docker config.json', () => {
  let dir: string
  let file: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flowforge-auth-'))
    file = join(dir, 'config.json')
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  function write(document: unknown): void {
    writeFileSync(file, typeof document === 'string' ? document : JSON.stringify(document))
  }

  test('what `docker login` writes (auth) and username/password entries both give credentials', async () => {
    write({ auths: { '127.0.0.1:5000': { auth: basic('alice', 's3:cret') }, 'registry.example.com': { username: 'bob', password: 'hunter2' } } })
    const auth = new RegistryAuthFile({ path: file, logger: captureLogs('info').logger })
    expect(await auth.lookup('127.0.0.1:5000/team/app:1')).toEqual({
      registryHost: '127.0.0.1:5000',
      credentials: { username: 'alice', password: 's3:cret', serveraddress: '127.0.0.1:5000' },
      description: `credentials for 127.0.0.1:5000 from ${file}`,
    })
    expect((await auth.lookup('registry.example.com/app')).credentials).toEqual({ username: 'bob', password: 'hunter2', serveraddress: 'registry.example.com' })
  })

  test('hosts match as in the Docker CLI: the exact key, then a key whose host is the same; Docker Hub under its index URL only', async () => {
    write({
      auths: {
        'https://127.0.0.1:5001/v2/': { auth: basic('a', '1') },
        'http://localhost:5000': { auth: basic('b', '2') },
        'https://index.docker.io/v1/': { auth: basic('hub', '3') },
        'registry.example.com:443': { auth: basic('c', '4') },
      },
    })
    const auth = new RegistryAuthFile({ path: file, logger: captureLogs('info').logger })
    expect((await auth.lookup('127.0.0.1:5001/app')).credentials?.username).toBe('a')
    expect((await auth.lookup('localhost:5000/x')).credentials?.username).toBe('b')
    expect((await auth.lookup('busybox')).credentials).toEqual({ username: 'hub', password: '3', serveraddress: 'https://index.docker.io/v1/' })
    expect((await auth.lookup('docker.io/team/app')).credentials?.username).toBe('hub')
    // Another port is another registry; an unknown host gets nothing.
    expect((await auth.lookup('registry.example.com/app')).credentials).toBeUndefined()
    expect((await auth.lookup('localhost/app')).credentials).toBeUndefined()
    expect(await auth.lookup('other.example/app')).toEqual({ registryHost: 'other.example', description: `no credentials for other.example in ${file}` })
  })

  test('docker.io under a key other than the index URL is not used, as in the CLI', async () => {
    write({ auths: { 'docker.io': { auth: basic('hub', 'x') } } })
    const auth = new RegistryAuthFile({ path: file, logger: captureLogs('info').logger })
    expect((await auth.lookup('busybox')).credentials).toBeUndefined()
  })

  test('a login after the start is used by the next pull: the file is read again when it changes, and only then', async () => {
    const reads: string[] = []
    const logs = captureLogs('info')
    const auth = new RegistryAuthFile({
      path: file,
      logger: logs.logger,
      fs: {
        stat: async (path) => (await import('node:fs/promises')).stat(path),
        readFile: async (path, encoding) => {
          reads.push(path)
          return (await import('node:fs/promises')).readFile(path, encoding)
        },
      },
    })
    expect((await auth.lookup('127.0.0.1:5000/app')).description).toContain('does not exist')
    write({ auths: {} })
    expect((await auth.lookup('127.0.0.1:5000/app')).credentials).toBeUndefined()
    expect(await auth.lookup('127.0.0.1:5000/app')).toMatchObject({ description: `no credentials for 127.0.0.1:5000 in ${file}` })
    expect(reads).toHaveLength(1)
    // `docker login` writes a temporary file and renames it into place.
    writeFileSync(join(dir, 'config.json.tmp'), JSON.stringify({ auths: { '127.0.0.1:5000': { auth: basic('alice', 'pw') } } }))
    renameSync(join(dir, 'config.json.tmp'), file)
    expect((await auth.lookup('127.0.0.1:5000/app')).credentials?.username).toBe('alice')
    expect(reads).toHaveLength(2)
    expect(logs.messages().filter((message) => message.includes('does not exist'))).toHaveLength(1)
  })

  test('credential helpers are not run: their hosts get no credentials, and the log says so once', async () => {
    write({ auths: { 'ghcr.io': {} }, credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud' } })
    const logs = captureLogs('info')
    const auth = new RegistryAuthFile({ path: file, logger: logs.logger })
    expect((await auth.lookup('ghcr.io/team/app')).credentials).toBeUndefined()
    expect((await auth.lookup('gcr.io/team/app')).credentials).toBeUndefined()
    write({ auths: { 'ghcr.io': {} }, credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud' }, other: 1 })
    await auth.lookup('ghcr.io/team/app')
    const helperLines = logs.messages().filter((message) => message.includes('credential helpers'))
    expect(helperLines).toEqual([`${file} names credential helpers (credsStore "desktop"; credHelpers for gcr.io), which FlowForge does not run: only the credentials written under "auths" are used; store them there (docker login with no credsStore configured)`])
  })

  test('a broken file gives no credentials and is never quoted in the log', async () => {
    const secret = basic('alice', 'never-log-me')
    write(`{"auths": {"127.0.0.1:5000": {"auth": "${secret}"}`)
    const logs = captureLogs('info')
    const auth = new RegistryAuthFile({ path: file, logger: logs.logger })
    expect(await auth.lookup('127.0.0.1:5000/app')).toEqual({ registryHost: '127.0.0.1:5000', description: `no credentials for 127.0.0.1:5000: ${file} is not valid JSON` })
    write({ auths: { '127.0.0.1:5000': { auth: Buffer.from('no-colon-never-log-me').toString('base64') } } })
    expect((await auth.lookup('127.0.0.1:5000/app')).credentials).toBeUndefined()
    const logged = logs.lines.map((line) => JSON.stringify(line)).join('\n')
    expect(logged).toContain('is not valid JSON')
    expect(logged).toContain('is not base64 of user:password')
    expect(logged).not.toContain('never-log-me')
    expect(logged).not.toContain(secret)
  })

  test('without REGISTRY_AUTH_FILE nothing is sent', async () => {
    expect(await NO_REGISTRY_AUTH.lookup('127.0.0.1:5000/app')).toEqual({ registryHost: '127.0.0.1:5000', description: 'no credentials for 127.0.0.1:5000 (REGISTRY_AUTH_FILE is not set)' })
  })

  test('the header is the base64url JSON the Docker CLI sends, and every form of the secret is redacted from text', () => {
    const credentials = { username: 'alice', password: 's3cret', serveraddress: '127.0.0.1:5000' }
    const header = registryAuthHeader(credentials)
    expect(JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString())).toEqual(credentials)
    expect(redactCredentials(`a s3cret b ${basic('alice', 's3cret')} c ${header}`, credentials)).toBe('a *** b *** c ***')
    expect(redactCredentials('s3cret', undefined)).toBe('s3cret')
  })
})

describe('what a failed pull came to', () => {
  test.each([
    [500, 'Head "http://127.0.0.1:5000/v2/app/manifests/1": no basic auth credentials', 'auth'],
    [500, 'unauthorized: authentication required', 'auth'],
    [500, 'pull access denied for secret/app, repository does not exist or may require \'docker login\': denied: requested access to the resource is denied', 'auth'],
    [401, 'whatever', 'auth'],
    [403, 'forbidden', 'auth'],
    [404, 'manifest for 127.0.0.1:5000/app:nope not found: manifest unknown: manifest unknown', 'not-found'],
    [500, 'manifest unknown', 'not-found'],
    [500, 'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', 'other'],
    [undefined, 'unexpected EOF', 'other'],
  ])('HTTP %s "%s" is %s', (statusCode, message, kind) => {
    expect(classifyPullFailure(statusCode, message)).toBe(kind)
  })
})
