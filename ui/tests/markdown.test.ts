import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown, safeHref } from "../src/lib/markdown";

describe("markdown blocks", () => {
  it("reads headings, paragraphs, lists, code fences, quotes and rules", () => {
    const md = "# Title\n\nSome *text*\nwrapped.\n\n- one\n- two\n  continued\n\n3. three\n4. four\n\n```py\nx = 1 # not a heading\n```\n> quoted\n\n---";
    expect(parseMarkdown(md)).toEqual([
      { kind: "heading", level: 1, children: [{ kind: "text", text: "Title" }] },
      { kind: "paragraph", children: [
        { kind: "text", text: "Some " }, { kind: "em", children: [{ kind: "text", text: "text" }] },
        { kind: "text", text: "\nwrapped." }] },
      { kind: "list", ordered: false, start: 1, items: [[{ kind: "text", text: "one" }], [{ kind: "text", text: "two continued" }]] },
      { kind: "list", ordered: true, start: 3, items: [[{ kind: "text", text: "three" }], [{ kind: "text", text: "four" }]] },
      { kind: "code", lang: "py", text: "x = 1 # not a heading" },
      { kind: "quote", children: [{ kind: "paragraph", children: [{ kind: "text", text: "quoted" }] }] },
      { kind: "rule" },
    ]);
  });

  it("keeps heading levels and an unclosed fence runs to the end", () => {
    expect(parseMarkdown("### Three ###").map((b) => b.kind === "heading" && b.level)).toEqual([3]);
    expect(parseMarkdown("```\n**raw**")).toEqual([{ kind: "code", lang: "", text: "**raw**" }]);
    expect(parseMarkdown("#no-space")).toEqual([{ kind: "paragraph", children: [{ kind: "text", text: "#no-space" }] }]);
  });
});

describe("markdown inline", () => {
  it("reads strong, emphasis, strike, code and links", () => {
    expect(parseInline("**bold** _it_ ~~gone~~ `a*b*` [site](https://example.com)")).toEqual([
      { kind: "strong", children: [{ kind: "text", text: "bold" }] }, { kind: "text", text: " " },
      { kind: "em", children: [{ kind: "text", text: "it" }] }, { kind: "text", text: " " },
      { kind: "del", children: [{ kind: "text", text: "gone" }] }, { kind: "text", text: " " },
      { kind: "code", text: "a*b*" }, { kind: "text", text: " " },
      { kind: "link", href: "https://example.com", children: [{ kind: "text", text: "site" }] },
    ]);
  });

  it("nests emphasis in strong and leaves unmatched markers and snake_case alone", () => {
    expect(parseInline("**a *b* c**")).toEqual([{ kind: "strong", children: [
      { kind: "text", text: "a " }, { kind: "em", children: [{ kind: "text", text: "b" }] }, { kind: "text", text: " c" }] }]);
    expect(parseInline("2 * 3 and snake_case_name *open")).toEqual([{ kind: "text", text: "2 * 3 and snake_case_name *open" }]);
    expect(parseInline("\\*not em\\*")).toEqual([{ kind: "text", text: "*not em*" }]);
  });

  it("links bare URLs", () => {
    expect(parseInline("see https://comfy.org/docs.")).toEqual([
      { kind: "text", text: "see " },
      { kind: "link", href: "https://comfy.org/docs", children: [{ kind: "text", text: "https://comfy.org/docs" }] },
      { kind: "text", text: "." },
    ]);
  });
});

describe("markdown safety", () => {
  it("never makes a link from a script or data URL", () => {
    expect(safeHref("javascript:alert(1)")).toBeNull();
    expect(safeHref(" JavaScript:alert(1)")).toBeNull();
    expect(safeHref("data:text/html,x")).toBeNull();
    expect(safeHref("https://x.org")).toBe("https://x.org");
    expect(safeHref("#anchor")).toBe("#anchor");
    expect(parseInline("[click](javascript:alert(1))").some((n) => n.kind === "link")).toBe(false);
  });

  it("keeps raw HTML as text", () => {
    expect(parseMarkdown("<img src=x onerror=alert(1)>")).toEqual([
      { kind: "paragraph", children: [{ kind: "text", text: "<img src=x onerror=alert(1)>" }] }]);
  });
});
