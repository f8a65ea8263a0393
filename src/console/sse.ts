/**
 * SSE over fetch: EventSource can neither POST nor send an Authorization header, so the console
 * (and the typed client, src/client.ts) read `text/event-stream` bodies themselves. Nothing here
 * touches the DOM, so it runs (and is tested) outside a browser too.
 */

export type SseMessage = { id: string | undefined; event: string; data: string };

/**
 * Returns a function that takes decoded chunks in arrival order and returns the messages they
 * complete. Follows the HTML standard's parsing: CRLF, CR or LF line ends, `:` comments
 * (heartbeats), multi-line `data`, an optional space after the colon.
 */
export function sseParser(): (chunk: string) => SseMessage[] {
  let buffered = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  return (chunk) => {
    buffered += chunk;
    const messages: SseMessage[] = [];
    // A trailing CR may be the first half of a CRLF split across chunks: keep it for the next one.
    const end = buffered.endsWith("\r") ? buffered.length - 1 : buffered.length;
    const lines = buffered.slice(0, end).split(/\r\n|\r|\n/);
    // The last piece has no line end yet.
    buffered = (lines.pop() ?? "") + buffered.slice(end);
    for (const line of lines) {
      if (line === "") {
        if (data.length > 0) messages.push({ id, event: event || "message", data: data.join("\n") });
        data = [];
        event = "";
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
      else if (field === "id" && !value.includes("\0")) id = value;
    }
    return messages;
  };
}

/** The messages of an SSE response body, as they complete. */
export async function* sseMessages(body: ReadableStream<Uint8Array> | null): AsyncGenerator<SseMessage> {
  if (!body) return;
  const parse = sseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parse(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.releaseLock();
  }
}

/** The stream of a run broke more often in a row than the caller allows. */
export class StreamLost extends Error {}

export type FollowOptions = {
  /** Gives the run's stream again after the last id seen: GET /runs/{id}/events with Last-Event-ID. It throws for an answer that is no stream. */
  reopen(lastId: number): Promise<Response>;
  /** How many broken connections in a row to reattach after; a message that arrives starts the count again. */
  reconnects: number;
  /** True when the caller ended the stream itself: the break is then its error, not one to reattach after. */
  stopped?(): boolean;
};

/**
 * A run's messages, each once, until its `done`, across broken connections. The server keeps a
 * run going while nobody watches it (`--reattach-grace`) and replays what came after the last
 * id, so a client that reattaches misses nothing.
 */
export async function* followRun(first: Response, { reopen, reconnects, stopped = () => false }: FollowOptions): AsyncGenerator<SseMessage> {
  let response = first;
  let lastId = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const message of sseMessages(response.body)) {
        const id = Number(message.id ?? 0);
        if (id > 0 && id <= lastId) continue;
        if (id > 0) lastId = id;
        attempt = 0;
        yield message;
        if (message.event === "done") return;
      }
    } catch (err) {
      if (stopped()) throw err;
    }
    if (attempt >= reconnects) throw new StreamLost(`the stream broke ${attempt + 1} times in a row before done`);
    response = await reopen(lastId);
  }
}
