// loadClientConfig: where forgectl finds the daemon (FORGE_URL) and its token.
import { describe, expect, test } from 'vitest'
import { ConfigError, loadClientConfig } from '../../src/config.js'

describe('loadClientConfig', () => {
  test('defaults to the daemon on loopback port 4000 without a token', () => {
    expect(loadClientConfig({})).toEqual({ url: 'http://127.0.0.1:4000' })
  })

  test('takes FORGE_URL (without its trailing slash, keeping a path) and FORGE_API_TOKEN', () => {
    expect(loadClientConfig({ FORGE_URL: 'https://forge.example.com/flowforge/', FORGE_API_TOKEN: ' secret-token ' })).toEqual({
      url: 'https://forge.example.com/flowforge',
      token: 'secret-token',
    })
  })

  test.each([
    ['ftp://example.com', 'FORGE_URL must be an http:// or https:// URL (not ftp:), got "ftp://example.com"'],
    ['localhost:4000', 'FORGE_URL must be an http:// or https:// URL (not localhost:), got "localhost:4000"'],
    ['not a url', 'FORGE_URL is not a URL; expected http://host:port such as http://127.0.0.1:4000, got "not a url"'],
    ['http://user:pw@127.0.0.1:4000', 'FORGE_URL must not carry credentials: set FORGE_API_TOKEN instead, got "http://user:pw@127.0.0.1:4000"'],
    ['http://127.0.0.1:4000/?x=1', 'FORGE_URL must not have a query string or fragment, got "http://127.0.0.1:4000/?x=1"'],
  ])('refuses FORGE_URL=%s with one clear problem', (value, problem) => {
    expect(() => loadClientConfig({ FORGE_URL: value })).toThrow(ConfigError)
    expect(() => loadClientConfig({ FORGE_URL: value })).toThrow(`invalid configuration: ${problem}`)
  })
})
