// Renders parseMarkdown's tree as React elements: text is always text, links open in a new tab.
import { Fragment, ReactNode } from "react";
import { Block, Inline, parseMarkdown } from "../lib/markdown";

function inlines(items: Inline[]): ReactNode {
  return items.map((it, i) => {
    switch (it.kind) {
      case "text": return <Fragment key={i}>{it.text}</Fragment>;
      case "code": return <code key={i}>{it.text}</code>;
      case "strong": return <strong key={i}>{inlines(it.children)}</strong>;
      case "em": return <em key={i}>{inlines(it.children)}</em>;
      case "del": return <del key={i}>{inlines(it.children)}</del>;
      case "link": return <a key={i} href={it.href} target="_blank" rel="noopener noreferrer nofollow">{inlines(it.children)}</a>;
    }
  });
}

function blocks(items: Block[]): ReactNode {
  return items.map((b, i) => {
    switch (b.kind) {
      case "heading": {
        const H = `h${b.level}` as "h1";
        return <H key={i}>{inlines(b.children)}</H>;
      }
      case "paragraph": return <p key={i}>{inlines(b.children)}</p>;
      case "list": {
        const items = b.items.map((item, j) => <li key={j}>{inlines(item)}</li>);
        return b.ordered ? <ol key={i} start={b.start}>{items}</ol> : <ul key={i}>{items}</ul>;
      }
      case "code": return <pre key={i}><code>{b.text}</code></pre>;
      case "quote": return <blockquote key={i}>{blocks(b.children)}</blockquote>;
      case "rule": return <hr key={i} />;
    }
  });
}

export function Markdown({ source }: { source: string }) {
  return <>{blocks(parseMarkdown(source))}</>;
}
