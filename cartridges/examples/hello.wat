;; hello: the smallest backend cartridge (used for the latency benchmark).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "hello from a cartridge")
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle") (param i32 i32) (result i64) (i64.const 22)))
