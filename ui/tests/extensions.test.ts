import { describe, expect, it } from "vitest";
import { registerExtension, extensionWidget, extensionFooter, extensionsVersion } from "../src/extensions";

describe("plugin UI extension point", () => {
  it("picks a plugin's widget by display hint first, then by type, latest registration winning", () => {
    const A = () => null;
    const B = () => null;
    const C = () => null;
    const v = extensionsVersion();
    registerExtension({ name: "one", widgets: { curve: A, MY_TYPE: B } });
    expect(extensionsVersion()).toBe(v + 1);
    expect(extensionWidget({ name: "x", type: "FLOAT", required: true, widget: true, display: "curve" })).toBe(A);
    expect(extensionWidget({ name: "x", type: "MY_TYPE", required: true, widget: true })).toBe(B);
    expect(extensionWidget({ name: "x", type: "INT", required: true, widget: true })).toBeUndefined();
    registerExtension({ name: "two", widgets: { curve: C }, nodeFooters: { KSampler: A } });
    expect(extensionWidget({ name: "x", type: "FLOAT", required: true, widget: true, display: "curve" })).toBe(C);
    expect(extensionFooter("KSampler")).toBe(A);
    // re-registering under the same name replaces
    registerExtension({ name: "two", widgets: {} });
    expect(extensionFooter("KSampler")).toBeUndefined();
  });
});
