// A small markdown reader for MarkdownNote: headings, paragraphs, lists, fenced/inline code,
// emphasis, links, rules and quotes. It returns a tree (never an HTML string), so the note's
// text can only ever become text nodes: raw HTML in a note shows as the characters typed.

export type Inline =
  | { kind: "text"; text: string }
  | { kind: "code"; text: string }
  | { kind: "strong" | "em" | "del"; children: Inline[] }
  | { kind: "link"; href: string; children: Inline[] };

export type Block =
  | { kind: "heading"; level: number; children: Inline[] }
  | { kind: "paragraph"; children: Inline[] }
  | { kind: "list"; ordered: boolean; start: number; items: Inline[][] }
  | { kind: "code"; lang: string; text: string }
  | { kind: "quote"; children: Block[] }
  | { kind: "rule" };

/** Only these link targets are followed; anything else (javascript:, data:, …) stays plain text. */
export function safeHref(href: string): string | null {
  const h = href.trim();
  if (/^(https?:|mailto:)/i.test(h)) return h;
  if (/^[a-z][a-z0-9+.-]*:/i.test(h)) return null; // another scheme
  if (/^[#/.]|^[\w-]/.test(h)) return h; // relative
  return null;
}

const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const FENCE = /^ {0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;

export function parseMarkdown(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    const fence = FENCE.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (or the end of the note)
      blocks.push({ kind: "code", lang: fence[2], text: body.join("\n") });
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({ kind: "heading", level: heading[1].length, children: parseInline(heading[2] ?? "") });
      i++;
      continue;
    }
    if (RULE.test(line)) { blocks.push({ kind: "rule" }); i++; continue; }
    if (QUOTE.test(line)) {
      const body: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(QUOTE.exec(lines[i++])![1]);
      blocks.push({ kind: "quote", children: parseMarkdown(body.join("\n")) });
      continue;
    }
    const bullet = BULLET.exec(line), ordered = ORDERED.exec(line);
    if (bullet || ordered) {
      const pattern = bullet ? BULLET : ORDERED;
      const items: string[] = [];
      while (i < lines.length && lines[i].trim()) {
        const m = pattern.exec(lines[i]);
        if (m) items.push(bullet ? m[1] : m[2]);
        else if (/^\s+\S/.test(lines[i]) && items.length) items[items.length - 1] += " " + lines[i].trim();
        else break;
        i++;
      }
      blocks.push({
        kind: "list", ordered: !bullet, start: ordered ? Number(ordered[1]) : 1,
        items: items.map(parseInline),
      });
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++].trim());
    blocks.push({ kind: "paragraph", children: parseInline(para.join("\n")) });
  }
  return blocks;
}

function startsBlock(line: string): boolean {
  return [FENCE, HEADING, RULE, QUOTE, BULLET, ORDERED].some((p) => p.test(line));
}

/** Inline spans, read left to right; an opener without its closer stays literal text. */
export function parseInline(text: string): Inline[] {
  const out: Inline[] = [];
  let plain = "";
  const flush = () => { if (plain) out.push({ kind: "text", text: plain }); plain = ""; };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && /[\\`*_~[\]()#>+\-.!]/.test(text[i + 1])) {
      plain += text[i + 1]; i += 2; continue;
    }
    if (c === "`") {
      const ticks = /^`+/.exec(text.slice(i))![0];
      const end = text.indexOf(ticks, i + ticks.length);
      if (end > 0) {
        flush();
        out.push({ kind: "code", text: text.slice(i + ticks.length, end).replace(/^ (.*) $/, "$1") });
        i = end + ticks.length; continue;
      }
      plain += ticks; i += ticks.length; continue;
    }
    if (c === "[") {
      const link = /^\[([^\]]*)\]\(\s*<?([^\s)>]*)>?(?:\s+"[^"]*")?\s*\)/.exec(text.slice(i));
      if (link) {
        const href = safeHref(link[2]);
        flush();
        if (href) out.push({ kind: "link", href, children: parseInline(link[1]) });
        else out.push(...parseInline(link[1]));
        i += link[0].length; continue;
      }
    }
    const auto = c === "h" && /^https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/.exec(text.slice(i));
    if (auto && (i === 0 || /\s|\(/.test(text[i - 1]))) {
      flush();
      out.push({ kind: "link", href: auto[0], children: [{ kind: "text", text: auto[0] }] });
      i += auto[0].length; continue;
    }
    if (c === "*" || c === "_" || c === "~") {
      const double = text[i + 1] === c;
      const marker = double ? c + c : c;
      if (c === "~" && !double) { plain += c; i++; continue; }
      // "_" inside a word (snake_case) is not emphasis
      if (c === "_" && i > 0 && /\w/.test(text[i - 1])) { plain += marker; i += marker.length; continue; }
      const start = i + marker.length;
      const end = findCloser(text, marker, start);
      if (end > start && !/\s/.test(text[start])) {
        flush();
        const kind = c === "~" ? "del" : double ? "strong" : "em";
        out.push({ kind, children: parseInline(text.slice(start, end)) });
        i = end + marker.length; continue;
      }
      plain += marker; i += marker.length; continue;
    }
    plain += c; i++;
  }
  flush();
  return out;
}

function findCloser(text: string, marker: string, from: number): number {
  for (let j = from; j < text.length; j++) {
    if (text[j] === "\\") { j++; continue; }
    if (text[j] === "`") { const end = text.indexOf("`", j + 1); if (end > 0) { j = end; continue; } }
    if (text.startsWith(marker, j) && !/\s/.test(text[j - 1])) {
      // "**" must not be read as the closer of a single "*"
      if (marker.length === 1 && text[j + 1] === marker) { j++; continue; }
      if (marker[0] === "_" && /\w/.test(text[j + marker.length] ?? "")) continue;
      return j;
    }
  }
  return -1;
}
