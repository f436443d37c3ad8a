// Type declarations of matchwire.js (the Matchwire JavaScript client).

export declare const SUBPROTOCOL: "matchwire.v1";

/** Timing and limits of spec/client.md, in milliseconds (overridable for tests). */
export interface Timing {
  floor: number;
  cap: number;
  stableAfter: number;
  rate: number;
  burst: number;
  rateLimitedPause: number;
  idleBeforePing: number;
  pongTimeout: number;
  connectTimeout: number;
  retryAfterMax: number;
  requestRetries: number;
  appliedRetention: number;
}
export declare const DEFAULTS: Readonly<Timing>;

/** The part of the browser WebSocket API the client uses. */
export interface WebSocketLike {
  readonly protocol: string;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "error" | "close", listener: (ev: any) => void): void;
  /** Node's ws only: used when present (HTTP status of a refusal, selected subprotocol, ping/pong). */
  on?(event: string, listener: (...args: any[]) => void): unknown;
  ping?(): void;
  terminate?(): void;
}
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

export interface ClientOptions {
  /** ws:// or wss:// URL of the server's /realtime endpoint. */
  url: string;
  /** Default: globalThis.WebSocket (browsers). On Node 20 pass one, e.g. the ws package's. */
  WebSocket?: WebSocketConstructor;
  /** A player token (spec/auth.md), sent as the access_token query parameter at every handshake. */
  token?: string | null;
  /** Called after close 4003 or a 401 refusal; resolve a new token, or null to stop. */
  refreshToken?: (() => Promise<string | null | undefined> | string | null | undefined) | null;
  timing?: Partial<Timing>;
}

export interface Assignment {
  matchId: string;
  connection: string;
  players?: { playerId: string; [k: string]: unknown }[];
  assignedAt?: string;
  [k: string]: unknown;
}

export type TicketState = "queued" | "assigned" | "cancelled" | "expired" | string;

export type MatchwireEvent =
  | { event: "open" }
  | { event: "enqueued"; ref: string; ticketId: string; state: TicketState; version: number }
  | { event: "assigned"; ticketId: string; version: number; matchId: string; connection: string; assignment: Assignment }
  | { event: "ended"; ticketId: string; state: "cancelled" | "expired"; version: number }
  | { event: "error"; ref?: string; ticketId?: string | null; code: string; retryable: boolean; local?: true; detail?: string }
  | { event: "closed"; code: number | null; reconnect: boolean; status?: number }
  | { event: "lost"; ticketId: string }
  | { event: "protocolError"; detail: string }
  | { event: "watching"; ticketId: string; state: TicketState; version: number }
  | { event: "reconnecting"; attempt: number; delayMs: number }
  | { event: "tokenRefresh" };

export type EventName = MatchwireEvent["event"];
export type EventOf<N extends EventName> = Extract<MatchwireEvent, { event: N }>;

export interface EnqueueRequest {
  queue: string;
  playerId: string;
  attributes?: Record<string, string | number>;
  /** Default: a new random 128-bit key (CLI-010). Never reuse one for another ticket. */
  idempotencyKey?: string;
  /** Names the request in its events; default "e1", "e2", ... */
  ref?: string;
}

export declare class MatchwireClient {
  constructor(options: ClientOptions);
  readonly url: string;
  token: string | null;
  /** ticketId -> the state and version the client holds. */
  readonly tickets: Map<string, { state: TicketState; version: number; at?: number }>;
  on<N extends EventName>(name: N, fn: (ev: EventOf<N>) => void): this;
  on(name: "*", fn: (ev: MatchwireEvent) => void): this;
  off(name: EventName | "*", fn: (ev: any) => void): this;
  connect(): void;
  /** Returns the request's ref. */
  enqueue(request: EnqueueRequest): string;
  watch(ticketId: string): void;
  cancel(ticketId: string): void;
  /** Close 1000, never reconnect; resolves when the socket has closed (at most 2 s). */
  close(): Promise<void>;
}
export default MatchwireClient;

export declare class DecodeError extends Error {
  code: "bad_json" | "too_deep" | "too_large" | "bad_envelope";
}
export interface Envelope {
  type: string;
  v: number;
  id?: string;
  data: Record<string, unknown>;
  [k: string]: unknown;
}
export declare function decodeEnvelope(text: string): Envelope;
export declare function parseStrictJSON(text: string): unknown;
export declare function validateEnqueue(
  queue: unknown,
  playerId: unknown,
  attributes?: unknown,
  key?: unknown,
): string | null;
