// The C API through bindgen, as docs/integration.md tells a Rust VMM to generate it: newtype
// enums (a value the Rust side does not name stays a valid value, where a rustified enum would
// be undefined behaviour), RF_COUNT_UNKNOWN declared by hand (bindgen cannot evaluate it), and a
// few calls that move real values across: versions, names, a NULL getter, a struct_size refusal,
// a window size. Built and run by tests/capi/rust/check-bindings.sh.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code)]
include!(env!("RF_BINDINGS"));

// bindgen leaves it out; a duplicate definition here would fail to compile if it ever did not.
pub const RF_COUNT_UNKNOWN: u64 = u64::MAX;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn name(status: rf_status) -> String {
    unsafe { CStr::from_ptr(rf_status_name(status)).to_string_lossy().into_owned() }
}

fn main() {
    unsafe {
        assert_eq!(rf_abi_version(), RINGFENCE_ABI_VERSION);
        assert_eq!(name(rf_status::RF_E_BUSY), "RF_E_BUSY");
        // A status this program's header does not know (a newer library may add some).
        assert_eq!(name(rf_status(99)), "RF_E_UNKNOWN");
        // Getters given NULL return 0, which no rf_memory_backing or rf_mode variant is.
        assert_eq!(rf_memory_backing_of(null()), rf_memory_backing(0));
        assert_eq!(rf_device_mode(null()), rf_mode(0));

        let region = rf_region { gpa: 0, size: 16 << 20, flags: 0, reserved: 0, host: null_mut(), memfd_offset: 0 };
        let mut memory: *mut rf_memory = null_mut();
        assert_eq!(rf_memory_create(&region, 1, rf_memory_backing::RF_MEMORY_ANONYMOUS, &mut memory), rf_status::RF_OK);
        let mut config: rf_device_config = std::mem::zeroed();
        config.struct_size = std::mem::size_of::<rf_device_config>() as u32;
        config.mode = rf_mode::RF_MODE_MEDIATED.0;
        config.device_window_gpa = 0x10000;
        config.queue_depth = 8;
        let mut bytes = 0u64;
        assert_eq!(rf_device_window_size(memory, 1, &config, &mut bytes), rf_status::RF_OK);
        assert!(bytes >= 4096, "a window of {} bytes", bytes);
        config.struct_size = RF_DEVICE_CONFIG_SIZE_VER1 - 1;
        assert_eq!(rf_device_window_size(memory, 1, &config, &mut bytes), rf_status::RF_E_INVALID_ARGUMENT);
        let error = CStr::from_ptr(rf_last_error()).to_string_lossy().into_owned();
        assert!(error.contains("first version"), "{}", error);
        config.struct_size = std::mem::size_of::<rf_device_config>() as u32;
        config.queue_depth = RF_DEVICE_MAX_QUEUE_DEPTH * 2;
        assert_eq!(rf_device_window_size(memory, 1, &config, &mut bytes), rf_status::RF_E_INVALID_ARGUMENT);
        assert_eq!(rf_memory_destroy(memory), rf_status::RF_OK);
    }
    assert_eq!(RF_COUNT_UNKNOWN, u64::MAX);
    println!("bindings_check: the generated bindings work");
}
