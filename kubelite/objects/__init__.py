"""Helpers on API objects: conversion, names, selectors, quantities, validation."""
