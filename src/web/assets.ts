// GET /console/assets/<file>: the console's own scripts and styles (public/console/ of the
// package, plain files: there is no client build) and uPlot's, read from node_modules at run
// time (a pinned production dependency, so the image has it). A fixed list, read once: no
// path from the request ever reaches the file system.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Hono } from 'hono'
import { packageRoot } from '../config.js'
import { CONSOLE_HEADERS } from './layout.js'

const OWN_FILES = ['console.css', 'console.js', 'plugin.js', 'marketplace.js', 'favicon.svg'] as const

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

interface Asset {
  body: Buffer
  contentType: string
}

/** Every asset by its name under /console/assets/. Default folder: public/console of the package. */
export function loadAssets(ownDir = path.join(packageRoot(), 'public', 'console')): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  const add = (name: string, file: string) => assets.set(name, { body: readFileSync(file), contentType: CONTENT_TYPES[path.extname(name)] ?? 'application/octet-stream' })
  for (const name of OWN_FILES) add(name, path.join(ownDir, name))
  const uplotDir = path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist')
  add('uplot.js', path.join(uplotDir, 'uPlot.iife.min.js'))
  add('uplot.css', path.join(uplotDir, 'uPlot.min.css'))
  return assets
}

export function assetRoutes(assets: Map<string, Asset>): Hono {
  const routes = new Hono()
  routes.get('/console/assets/:name', (c) => {
    const asset = assets.get(c.req.param('name'))
    if (asset === undefined) return c.json({ error: { code: 'not_found', message: 'no such asset', details: [] } }, 404)
    return c.body(new Uint8Array(asset.body), 200, {
      ...CONSOLE_HEADERS,
      'Content-Type': asset.contentType,
      // Not versioned by name: a restart after an upgrade must not be hidden by a cache.
      'Cache-Control': 'no-cache',
    })
  })
  return routes
}
