;; recursive: calls itself. The host stops the chain at depth 3; the innermost call sees -2 and
;; answers with the depth it reached, each caller adds one more "<" in front.
(module
  (import "colony" "call" (func $call (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "recursive")   ;; 9 bytes
  (func (export "alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32)
    (local.set $n (call $call (i32.const 0) (i32.const 9) (i32.const 0) (i32.const 0) (i32.const 101) (i32.const 256)))
    (i32.store8 (i32.const 100) (i32.const 60))  ;; "<"
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (i64.or (i64.shl (i64.const 100) (i64.const 32)) (i64.extend_i32_u (i32.add (i32.const 1) (local.get $n))))))
