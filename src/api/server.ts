// The HTTP server around the Hono app: @hono/node-server with a `ws` WebSocketServer for
// /api/v1/ws. Its close() ends open streams too, so the daemon stops within seconds.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { Hono } from 'hono'
import { WebSocketServer } from 'ws'
import type { Logger } from '../logger.js'

export interface ApiServerOptions {
  app: Hono
  host: string
  /** 0 picks any free port; `address` reports the real one. */
  port: number
  logger: Logger
  /** How long WebSocket clients get to answer a close before they are cut off. Default 1_000 ms. */
  closeGraceMs?: number
}

export interface ApiServer {
  address: { host: string; port: number }
  /** Stops listening and ends every open connection: requests, SSE streams, WebSockets. */
  close(): Promise<void>
}

export const MAX_WEBSOCKET_MESSAGE_BYTES = 64 * 1024

/** 1001 Going Away: the server is shutting down. */
const CLOSE_GOING_AWAY = 1001

/** Resolves once listening; rejects when the port cannot be had (EADDRINUSE names the port and PORT). */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { host, port, logger } = options
  // Clients send nothing the server reads on the event stream: a message (or frame) over
  // 64 KiB closes the connection (1009) instead of being buffered (ws' default is 100 MiB).
  const webSockets = new WebSocketServer({ noServer: true, maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES })
  const server = serve({ fetch: options.app.fetch, hostname: host, port, websocket: { server: webSockets } }) as Server
  try {
    await listening(server)
  } catch (error) {
    webSockets.close()
    throw listenError(error, host, port)
  }
  // After start-up an error is not fatal to the process (a client socket gone wrong): log it.
  server.on('error', (error) => logger.error({ err: error }, 'HTTP server error'))
  const actualPort = (server.address() as AddressInfo).port
  logger.info({ host, port: actualPort }, 'API listening')
  let closing: Promise<void> | undefined
  return {
    address: { host, port: actualPort },
    close: () => {
      closing ??= closeServer(server, webSockets, options.closeGraceMs ?? 1_000)
      return closing
    },
  }
}

function listening(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening)
      reject(error)
    }
    const onListening = () => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
  })
}

function listenError(error: unknown, host: string, port: number): Error {
  const code = (error as { code?: unknown }).code
  if (code === 'EADDRINUSE') {
    return new Error(`port ${port} on ${host} is already in use: stop the process that holds it, or set PORT to a free port`, { cause: error })
  }
  if (code === 'EACCES') return new Error(`not allowed to listen on port ${port} on ${host}: choose a port above 1023 with PORT`, { cause: error })
  if (code === 'EADDRNOTAVAIL') return new Error(`cannot listen on ${host}: no such local address (API_BIND_ADDRESS)`, { cause: error })
  return error instanceof Error ? error : new Error(String(error))
}

async function closeServer(server: Server, webSockets: WebSocketServer, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  // server.close() waits for every connection, and neither a WebSocket nor an SSE stream
  // ever ends on its own: say goodbye to WebSocket clients, cut HTTP connections.
  for (const client of webSockets.clients) client.close(CLOSE_GOING_AWAY, 'server shutting down')
  server.closeAllConnections()
  await waitForWebSocketsToClose(webSockets, graceMs)
  for (const client of webSockets.clients) client.terminate()
  await closed
}

/** Resolves when every client has closed, or after `graceMs`, whichever is first. */
async function waitForWebSocketsToClose(webSockets: WebSocketServer, graceMs: number): Promise<void> {
  const open = [...webSockets.clients].filter((client) => client.readyState !== client.CLOSED)
  if (open.length === 0) return
  let timer: NodeJS.Timeout | undefined
  const graceOver = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs)
  })
  const allClosed = Promise.all(open.map((client) => new Promise<void>((resolve) => client.once('close', () => resolve()))))
  await Promise.race([allClosed, graceOver])
  clearTimeout(timer)
}
