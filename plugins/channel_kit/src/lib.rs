//! Shared parts of pf's channel-pruning learners (`channel_pruned`,
//! `dis_chn_pruned`): which channel groups can be pruned ([`groups`]), what
//! the model costs when they keep some channels and how to scale ratios to
//! a FLOPs budget ([`budget`]), the sampled features of the layers that
//! read a group and the least-squares reconstruction of their weights
//! ([`reconstruct`]), the LASSO channel selection of He et al.
//! ([`lasso`]), and uniform or per-group preserve ratios under a FLOPs
//! target ([`ratios`]). A library, not a plugin: each learner links it.

pub mod budget;
pub mod groups;
pub mod lasso;
pub mod outcome;
pub mod ratios;
pub mod reconstruct;
