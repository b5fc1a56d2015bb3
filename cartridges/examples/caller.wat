;; caller: calls the cartridge named "counter" and answers "counter says <its body>".
;; Shows the call import: each callee runs with its own KV and limits; depth is capped at 3.
(module
  (import "colony" "call" (func $call (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "colony" "log" (func $log (param i32 i32)))
  (import "colony" "set_status" (func $set_status (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "counter")            ;; 7 bytes
  (data (i32.const 16) "counter says ")     ;; 13 bytes, the answer starts here
  (data (i32.const 48) "calling counter")   ;; 15 bytes
  (func (export "alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32)
    (call $log (i32.const 48) (i32.const 15))
    (local.set $n (call $call (i32.const 0) (i32.const 7) (i32.const 0) (i32.const 0) (i32.const 29) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 0))
      (then (call $set_status (i32.const 502)) (return (i64.const 0))))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.extend_i32_u (i32.add (i32.const 13) (local.get $n))))))
