/* vmm sample guest: the user programs, embedded as flat images (built from user/). */
    .section .rodata
    .balign 16
    .globl app_hello_start, app_hello_end, app_fault_start, app_fault_end, app_priv_start, app_priv_end
app_hello_start:
    .incbin "hello.bin"
app_hello_end:
    .balign 16
app_fault_start:
    .incbin "fault.bin"
app_fault_end:
    .balign 16
app_priv_start:
    .incbin "priv.bin"
app_priv_end:
