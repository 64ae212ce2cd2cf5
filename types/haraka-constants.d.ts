declare module 'haraka-constants' {
    const constants: { ok: number; deny: number; denysoft: number; cont: number; [k: string]: unknown }
    export default constants
}
