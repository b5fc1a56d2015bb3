;; counter: counts its calls in its KV store and answers with the new count as text.
;; Shows kv_get / kv_set and the response ABI (handle returns ptr << 32 | len).
(module
  (import "colony" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i32)))
  (import "colony" "kv_set" (func $kv_set (param i32 i32 i32 i32) (result i32)))
  (import "colony" "set_header" (func $set_header (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "count")          ;; key at 0, 5 bytes
  (data (i32.const 16) "content-type")  ;; 12 bytes
  (data (i32.const 32) "text/plain")    ;; 10 bytes
  ;; 64..67: the count as a little-endian i32; 128..: the decimal answer; 1024..: the request
  (func (export "alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32) (local $end i32) (local $start i32)
    (if (i32.ne (call $kv_get (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 4)) (i32.const 4))
      (then (i32.store (i32.const 64) (i32.const 0))))
    (local.set $n (i32.add (i32.load (i32.const 64)) (i32.const 1)))
    (i32.store (i32.const 64) (local.get $n))
    (drop (call $kv_set (i32.const 0) (i32.const 5) (i32.const 64) (i32.const 4)))
    (call $set_header (i32.const 16) (i32.const 12) (i32.const 32) (i32.const 10))
    ;; write the decimal digits backwards from 160
    (local.set $end (i32.const 160))
    (local.set $start (i32.const 160))
    (loop $digits
      (local.set $start (i32.sub (local.get $start) (i32.const 1)))
      (i32.store8 (local.get $start) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (i32.ne (local.get $n) (i32.const 0))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $start)) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $end) (local.get $start))))))
