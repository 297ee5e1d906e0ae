;; A resolver (WIT 0.1.0, world `import-hook`) whose only work is a table
;; bomb: it grows its function table 5,000 elements at a time, as a runaway
;; allocator would, until a grow is refused, and then traps (as a guest
;; allocator aborts when it cannot grow). tests/build.rs embeds the world's
;; metadata and wraps this core module into a component (wit-component), so
;; the host sees what a real toolchain's component would look like.
;;
;; The canonical ABI of `resolve: func(request: import-request) ->
;; result<response, string>`: the request has more than 16 flat values, so
;; it arrives as one pointer into this module's memory (written there through
;; `cabi_realloc`); the result is returned through a pointer too.
(module
  (memory (export "memory") 16)
  (table $t 1 funcref)
  ;; Bump allocator for the host's copy of the request: never frees, and
  ;; traps past the 1 MiB of memory above (a test request is a few KiB).
  (global $next (mut i32) (i32.const 1024))
  (func (export "cabi_realloc")
        (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
        (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.add (global.get $next) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $next (i32.add (local.get $p) (local.get $size)))
    (if (i32.gt_u (global.get $next) (i32.const 1048576))
      (then unreachable))
    (local.get $p))
  (func (export "hookbox:okta-import/resolver@0.1.0#resolve") (param i32) (result i32)
    (loop $grow
      (br_if $grow
        (i32.ne (table.grow $t (ref.null func) (i32.const 5000)) (i32.const -1))))
    unreachable))
