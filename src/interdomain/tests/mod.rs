//! Unit tests of the inter-domain algorithms: statistical properties with fixed seeds (each
//! test prints its seed) and tolerances several standard errors wide, so they are stable yet
//! fail when the property breaks.

mod blip;
mod descriptor;
mod urps;
mod weighted;
