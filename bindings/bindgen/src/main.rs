//! `uniffi-bindgen generate --library target/…/libsealcast_ffi.so --language kotlin|swift|python`
fn main() {
    uniffi::uniffi_bindgen_main()
}
