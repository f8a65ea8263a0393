/**
 * The browser side of SSE for fetch streams: EventSource can neither POST nor send an
 * Authorization header, so the console reads `text/event-stream` bodies itself. Pure, so that it
 * runs (and is tested) outside a browser too.
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
