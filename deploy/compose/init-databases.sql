-- One database per access point, as the sandbox has them.
CREATE DATABASE sandbox_ap_a;
CREATE DATABASE sandbox_ap_b;
